"""The gateway's prompt stage, end to end on SQLite and PostgreSQL: a real gateway, a fake
OpenAI-compatible upstream that records what it receives, real project keys. The rendered
messages reach the upstream (and ``prompt``/``variables`` do not), the ledger row names the
prompt version, bad variables are 400s naming them, another project's prompt is a 404, and
the hot path reads the database once per TTL, not once per request."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest
from _clocks import ManualClock
from sqlalchemy import event, select

import genai
from apps._prompts import PromptStage, prompt_stage
from genai.gateway import GatewayOptions, RequestStage, Stages, create_gateway
from genai.store import Store
from genai.store import schema as t
from genai.testing import FakeOpenAIServer, running_server
from prompts import PromptHub, PromptTemplate

A, B = "support-bot", "other-team"
QUESTION = "Where is my invoice?"


def qa(style: str) -> PromptTemplate:
    return PromptTemplate(
        messages=[
            ("system", "Answer from {{ company }}'s documents. " + style),
            ("user", "{{ question }}"),
        ],
        variables={"company": {"type": "str", "default": "ACME"}, "question": "str"},
    )


@dataclass
class World:
    admin: genai.Client
    fake: FakeOpenAIServer
    url: str
    keys: dict[str, str]
    gateway: Any
    prompt_queries: list[str]
    clock: Any

    def post(self, project: str, body: dict[str, Any], **headers: str) -> httpx.Response:
        return httpx.post(
            f"{self.url}/v1/chat/completions",
            json={"model": "chat", **body},
            headers={"authorization": f"Bearer {self.keys[project]}", **headers},
            timeout=30,
        )

    def ledger(self, request_id: str, wait_until: Callable[..., bool]) -> t.UsageRecord:
        def row() -> t.UsageRecord | None:
            with self.admin.store.session() as s:
                return s.scalars(
                    select(t.UsageRecord).where(t.UsageRecord.request_id == request_id)
                ).one_or_none()

        assert wait_until(lambda: row() is not None, timeout=10), "no ledger row"
        found = row()
        assert found is not None
        return found


def build_world(
    platform: Callable[..., genai.Client],
    settings: genai.Settings,
    gateway_server: Callable[..., Any],
    fake: FakeOpenAIServer,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> World:
    admin = platform()
    keys = {}
    for project in (A, B):
        admin.projects.create(project)
        keys[project] = admin.keys.create(project, role="developer").secret
        admin.registry.deployments.create(
            project,
            "chat",
            spec={"targets": [{"name": "main", "url": fake.url, "model": "fake-base"}]},
        )
    hub = PromptHub(admin, A)
    hub.push("qa", qa("One."))
    hub.push("qa", qa("Two."), label="production")
    hub.push(
        "brief",
        PromptTemplate(
            text="Summarise in {{ n }} words: {{ text }}", variables={"n": "int", "text": "str"}
        ),
    )
    store = Store(settings.resolved_database_url, pool_size=10)
    gateway = create_gateway(
        settings,  # wired as apps/gateway.py wires it: the stage reads the gateway's store
        stages=Stages(request=[PromptStage(settings, store, ttl_s=60, clock=clock)]),
        options=GatewayOptions(ledger_interval_s=0.05),
        store=store,
    )
    queries: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "FROM prompt_versions" in statement:
            queries.append(statement)

    event.listen(store.engine, "before_cursor_execute", count)
    live = gateway_server(settings, gateway=gateway)
    return World(admin, fake, live.url, keys, gateway, queries, clock)


@pytest.fixture
def fake() -> Iterator[FakeOpenAIServer]:
    server = FakeOpenAIServer(max_model_len=4096, reply="Billing, then Invoices.")
    with running_server(server.app) as url:
        server.url = url + "/v1"
        yield server


@pytest.fixture
def world(platform, settings, gateway_server, fake, clock: ManualClock) -> World:
    return build_world(platform, settings, gateway_server, fake, clock=clock)


def test_rendered_prompt_reaches_upstream_and_the_ledger_names_its_version(
    world: World, wait_until: Callable[..., bool]
) -> None:
    answer = world.post(
        A,
        {
            "prompt": "qa@production",
            "variables": {"question": QUESTION},
            "messages": [{"role": "user", "content": "And last month's?"}],
        },
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"] == "Billing, then Invoices."
    sent = world.fake.last("/v1/chat/completions")
    assert sent["messages"] == [
        {"role": "system", "content": "Answer from ACME's documents. Two."},
        {"role": "user", "content": QUESTION},
        {"role": "user", "content": "And last month's?"},
    ]
    assert "prompt" not in sent and "variables" not in sent
    row = world.ledger(answer.headers["x-request-id"], wait_until)
    assert (row.prompt_version, row.status) == ("qa@2", "ok")

    # a pinned version, streamed; a text template is one user message; no prompt, no version
    streamed = world.post(
        A, {"prompt": "qa@1", "variables": {"question": "q", "company": "Globex"}, "stream": True}
    )
    assert streamed.status_code == 200 and "[DONE]" in streamed.text
    assert world.fake.last("/v1/chat/completions")["messages"][0]["content"] == (
        "Answer from Globex's documents. One."
    )
    assert world.ledger(streamed.headers["x-request-id"], wait_until).prompt_version == "qa@1"
    text = world.post(A, {"prompt": "brief", "variables": {"n": 5, "text": "long text"}})
    assert world.fake.last("/v1/chat/completions")["messages"] == [
        {"role": "user", "content": "Summarise in 5 words: long text"}
    ]
    assert world.ledger(text.headers["x-request-id"], wait_until).prompt_version == "brief@1"
    plain = world.post(A, {"messages": [{"role": "user", "content": "hi"}]})
    assert world.ledger(plain.headers["x-request-id"], wait_until).prompt_version == ""


def test_the_openai_sdk_sends_prompts_through_extra_body(world: World) -> None:
    client = openai.OpenAI(base_url=world.url + "/v1", api_key=world.keys[A], max_retries=0)
    reply = client.chat.completions.create(
        model="chat",
        messages=[],
        extra_body={"prompt": "qa@production", "variables": {"question": QUESTION}},
    )
    assert reply.choices[0].message.content == "Billing, then Invoices."
    assert world.fake.last("/v1/chat/completions")["messages"][1]["content"] == QUESTION


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"prompt": "qa@production", "variables": {}}, "question", ["missing", "'question'"]),
        (
            {"prompt": "qa@production", "variables": {"question": "q", "qestion": "q"}},
            "qestion",
            ["unexpected", "'qestion'"],
        ),
        (
            {"prompt": "brief", "variables": {"n": "five", "text": "t"}},
            "n",
            ["'n' must be int"],
        ),
        ({"prompt": "qa@@2", "variables": {}}, "prompt", ["invalid reference"]),
        ({"prompt": 42}, "prompt", ["names a registered prompt"]),
        ({"prompt": "qa", "variables": ["q"]}, "variables", ["must be an object"]),
        (
            {"variables": {"q": 1}, "messages": [{"role": "user", "content": "x"}]},
            "variables",
            ["name it too"],
        ),
    ],
)
def test_bad_variables_are_400_naming_them(
    world: World,
    wait_until: Callable[..., bool],
    body: dict[str, Any],
    param: str,
    words: list[str],
) -> None:
    calls = world.fake.calls()
    answer = world.post(A, body)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error"
    for word in words:
        assert word in error["message"], error["message"]
    assert world.fake.calls() == calls  # nothing went upstream
    if param in ("question", "qestion"):  # the version was known: the ledger says which
        row = world.ledger(answer.headers["x-request-id"], wait_until)
        assert (row.prompt_version, row.status) == ("qa@2", "invalid_request")


def test_another_projects_prompt_is_a_404_like_a_missing_one(world: World) -> None:
    theirs = world.post(B, {"prompt": "qa@production", "variables": {"question": "q"}})
    missing = world.post(A, {"prompt": "nothing@production", "variables": {"question": "q"}})
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["error"]["message"] == "prompt:qa@production not found"
    assert A not in theirs.text
    # B's own prompt of the same name is B's (once the 404, remembered for 1 s, is forgotten)
    PromptHub(world.admin, B).push("qa", qa("B's."), label="production")
    assert world.post(B, {"prompt": "qa@production", "variables": {"question": "q"}}).is_error
    world.clock.advance(1.5)
    mine = world.post(B, {"prompt": "qa@production", "variables": {"question": "q"}})
    assert mine.status_code == 200
    assert world.fake.last("/v1/chat/completions")["messages"][0]["content"].endswith("B's.")


def test_the_hot_path_reads_each_prompt_once_per_ttl(
    world: World, wait_until: Callable[..., bool]
) -> None:
    for _ in range(10):
        ok = world.post(A, {"prompt": "qa@production", "variables": {"question": "q"}})
        assert ok.status_code == 200
    assert len(world.prompt_queries) == 1
    PromptHub(world.admin, A).label("qa@1", "production")  # another process moves it
    world.clock.advance(59)
    still = world.post(A, {"prompt": "qa@production", "variables": {"question": "q"}})
    assert world.ledger(still.headers["x-request-id"], wait_until).prompt_version == "qa@2"
    world.clock.advance(2)  # past the TTL
    moved = world.post(A, {"prompt": "qa@production", "variables": {"question": "q"}})
    assert world.ledger(moved.headers["x-request-id"], wait_until).prompt_version == "qa@1"
    assert len(world.prompt_queries) == 2


def test_prompt_stage_takes_its_ttl_from_the_environment(
    settings: genai.Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(settings.resolved_database_url)
    monkeypatch.setenv("GENAI_GATEWAY_PROMPT_TTL_S", "2.5")
    stage = prompt_stage(settings, store)
    assert isinstance(stage, PromptStage) and stage.name == "prompts"
    assert isinstance(stage, RequestStage)
    assert stage.ttl_s == 2.5
    assert prompt_stage(settings, store, ttl_s=7).ttl_s == 7
    store.dispose()
