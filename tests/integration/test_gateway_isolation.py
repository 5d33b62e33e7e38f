"""A key of project A can neither call, list nor probe anything of project B through the
gateway: every ``/v1`` endpoint answers for B's deployments, adapters and response ids
exactly as it answers for ones that exist nowhere (same status, same body but for the name
asked about), nothing of B is listed, B's names never appear in A's errors, and A's
requests never land in B's ledger. On SQLite and on PostgreSQL, for keys of every role.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select

from genai.gateway import GatewayRequest, Stages, TargetSpec
from genai.store import schema as t

A, B = "proj-a", "proj-b"
BASE = "tiny-llama"
ROLES = ["viewer", "developer", "maintainer", "owner"]
HELLO = [{"role": "user", "content": "Hello"}]
GHOST_RID = "f" * 24
#: What only B has; none of it may appear in an answer to A.
B_SECRETS = [B, "b-primary", "b-bot", "b-vectors-target", "b-only-adapter-note"]


class Recorder:
    """B's knowledge bot: a target stage that counts who reached it."""

    name = "b-bot"

    def __init__(self) -> None:
        self.projects: list[str] = []

    async def complete(self, request: GatewayRequest, target: TargetSpec) -> dict[str, Any]:
        self.projects.append(request.project)
        return {
            "id": "bot",
            "object": "chat.completion",
            "created": 1,
            "model": "bot",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "B's bot speaking"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4},
        }

    async def stream(
        self, request: GatewayRequest, target: TargetSpec
    ) -> AsyncIterator[dict[str, Any]]:
        self.projects.append(request.project)
        yield {
            "id": "bot",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "bot",
            "choices": [{"index": 0, "delta": {"content": "B's bot"}, "finish_reason": "stop"}],
        }


@pytest.fixture
def world(platform, settings, model_server, http, gateway_server):
    """B: ``b-chat`` (adapter a2), ``b-vectors`` (embeddings), ``shared`` (its own bot) and
    answers it got; A: ``shared`` (the model server, adapter a1) and keys of every role."""
    admin = platform()
    admin.projects.create(A)
    admin.projects.create(B, description="b-only-adapter-note")
    local = {"url": model_server.v1, "model": BASE}
    deploy = admin.registry.deployments.create
    deploy(B, "b-chat", spec={"targets": [{"name": "b-primary", **local}], "adapters": ["a2"]})
    deploy(
        B,
        "b-vectors",
        spec={"kind": "embedding", "targets": [{"name": "b-vectors-target", **local}]},
    )
    deploy(B, "shared", spec={"targets": [{"name": "b-bot", "backend": "b-bot"}]})
    deploy(A, "shared", spec={"targets": [{"name": "a-primary", **local}], "adapters": ["a1"]})
    bot = Recorder()
    gw = gateway_server(settings, stages=Stages(targets={"b-bot": bot}))

    b_key = admin.keys.create(B, role="developer", name="b-key").secret
    b_ids = []
    for path, body in (
        ("/chat/completions", {"model": "b-chat:a2", "messages": HELLO, "max_tokens": 2}),
        ("/completions", {"model": "b-chat", "prompt": "Hi", "max_tokens": 2, "stream": True}),
        ("/chat/completions", {"model": "shared", "messages": HELLO}),
    ):
        answer = http.post(gw.v1 + path, headers=bearer(b_key), json=body)
        assert answer.status_code == 200, answer.text
        b_ids.append(answer.headers["x-request-id"])
    assert bot.projects == [B]
    a_keys = {role: admin.keys.create(A, role=role, name=role).secret for role in ROLES}
    return SimpleNamespace(
        admin=admin, http=http, gw=gw, bot=bot, b_key=b_key, b_ids=b_ids, a_keys=a_keys
    )


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def answer(world: Any, key: str, method: str, path: str, body: Any = None) -> tuple[int, str]:
    response = world.http.request(method, world.gw.v1 + path, headers=bearer(key), json=body)
    return response.status_code, response.text


def probes(b_name: str, ghost: str) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """The same request about B's thing and about a thing that exists nowhere."""
    out = []
    for stream in (False, True):
        for path, body in (
            ("/chat/completions", {"model": "{}", "messages": HELLO, "stream": stream}),
            ("/completions", {"model": "{}", "prompt": "Hi", "stream": stream}),
        ):
            text = json.dumps(body)
            out.append(
                (
                    path,
                    json.loads(text.replace("{}", b_name)),
                    json.loads(text.replace("{}", ghost)),
                )
            )
    out.append(("/embeddings", {"model": b_name, "input": "x"}, {"model": ghost, "input": "x"}))
    return out


CASES = [
    ("b-chat", "ghost-chat"),
    ("b-chat:a2", "ghost-chat:a2"),
    ("b-vectors", "ghost-vectors"),
    ("shared:a2", "shared:zz"),  # B's adapter on A's deployment of the same name
]


def test_a_cannot_tell_bs_deployments_from_missing_ones(world, subtests):
    for (b_name, ghost), role in itertools.product(CASES, ROLES):
        key = world.a_keys[role]
        for path, about_b, about_ghost in probes(b_name, ghost):
            with subtests.test(role=role, model=b_name, path=path, stream=about_b.get("stream")):
                status_b, body_b = answer(world, key, "POST", path, about_b)
                status_ghost, body_ghost = answer(world, key, "POST", path, about_ghost)
                plain = b_name.replace(":a2", "") if b_name != "shared:a2" else b_name
                plain_ghost = ghost.replace(":a2", "") if ghost != "shared:zz" else ghost
                assert status_b == status_ghost == (403 if role == "viewer" else 404)
                assert body_b.replace(b_name, ghost).replace(plain, plain_ghost) == body_ghost
                assert json.loads(body_b)["error"]["type"] in (
                    "invalid_request_error",
                    "permission_error",
                )
                assert not [s for s in B_SECRETS if s in body_b]
    assert world.bot.projects == [B]  # B's bot never heard from A


def test_a_cannot_rate_bs_answers(world, subtests):
    for rid, role in itertools.product(world.b_ids, ROLES):
        key = world.a_keys[role]
        for given in (rid, f"chatcmpl-{rid}", f"cmpl-{rid}"):
            with subtests.test(role=role, response_id=given):
                ghost = given.replace(rid, GHOST_RID)
                status_b, body_b = answer(
                    world, key, "POST", "/feedback", {"response_id": given, "score": 1}
                )
                status_ghost, body_ghost = answer(
                    world, key, "POST", "/feedback", {"response_id": ghost, "score": 1}
                )
                assert status_b == status_ghost == (403 if role == "viewer" else 404)
                assert body_b.replace(rid, GHOST_RID) == body_ghost
                assert not [s for s in B_SECRETS if s in body_b]
    assert world.gw.gateway.ledger.flush()
    with world.admin.store.session() as s:
        assert s.scalars(select(t.Feedback)).all() == []
    # B itself may rate them
    ok = answer(
        world, world.b_key, "POST", "/feedback", {"response_id": world.b_ids[0], "score": 1}
    )
    assert ok[0] == 200


def test_a_lists_only_its_own_models(world):
    for role in ROLES:
        status, body = answer(world, world.a_keys[role], "GET", "/models")
        assert status == 200
        listed = json.loads(body)["data"]
        assert [m["id"] for m in listed] == ["shared", "shared:a1"]
        assert {m["owned_by"] for m in listed} == {A}
        assert not [s for s in [*B_SECRETS, "b-chat", "b-vectors", "a2"] if s in body]
    status, body = answer(world, world.b_key, "GET", "/models")
    assert [m["id"] for m in json.loads(body)["data"]] == [
        "b-chat",
        "b-chat:a2",
        "b-vectors",
        "shared",
    ]


def test_same_names_route_per_project_and_usage_stays_home(world):
    """A's ``shared`` is A's model server deployment, not B's bot; A's requests (and
    refusals) never appear in B's ledger."""
    key = world.a_keys["developer"]
    for body in (
        {"model": "shared", "messages": HELLO, "max_tokens": 2},
        {"model": "shared:a1", "messages": HELLO, "max_tokens": 2, "stream": True},
    ):
        status, text = answer(world, key, "POST", "/chat/completions", body)
        assert status == 200, text
        assert "B's bot" not in text
    for model in ("b-chat", "b-chat:a2", "shared:a2", "b-vectors"):
        assert (
            answer(world, key, "POST", "/chat/completions", {"model": model, "messages": HELLO})[0]
            == 404
        )
    assert world.bot.projects == [B]

    assert world.gw.gateway.ledger.flush()
    with world.admin.store.session() as s:
        ids = {p.name: p.id for p in s.scalars(select(t.Project))}
        rows = s.scalars(select(t.UsageRecord)).all()
    b_rows = [r for r in rows if r.project_id == ids[B]]
    a_rows = [r for r in rows if r.project_id == ids[A]]
    assert sorted(r.request_id for r in b_rows) == sorted(world.b_ids)
    assert [(r.model, r.target, r.adapter) for r in a_rows] == [
        ("shared", "a-primary", ""),
        ("shared", "a-primary", "a1"),
    ]
    report = world.admin.usage.report(B)
    assert report.total.requests == 3
    assert {row.model for row in report.rows} == {"b-chat", "shared"}
