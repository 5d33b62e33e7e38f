"""Input validation as OpenAI does it, through a real gateway over HTTP: message shapes and
roles, duplicate keys, booleans that are not numbers, integers out of range, ids and dates
on ``/api``, a client that leaves mid-body, the cap on keys per project, and the OpenAPI
document that states all of it. Every refusal is a 4xx in OpenAI's error shape, with the
offending field in ``param`` and a message that says what to send instead.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from _admin_world import OPERATOR, World, spec_for

from apps.admin import mount_admin
from genai.errors import ConflictError
from genai.testing import FakeOpenAIServer, running_server

HELLO = [{"role": "user", "content": "Hello"}]
CALL = {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}
INT64 = 2**63


# SQLite only (the key cap below runs on PostgreSQL too: its ``capped`` fixture).
pytestmark = pytest.mark.sqlite_only


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAIServer]:
    fake = FakeOpenAIServer(base_model="tiny", max_model_len=4096)
    with running_server(fake.app) as url:
        fake.url = url
        yield fake


@pytest.fixture
def world(admin_world: World, upstream: FakeOpenAIServer) -> World:
    """Projects shop and bank, the admin API (``admin_world``), and deployment ``chat`` of
    shop on the fake."""
    spec = spec_for(upstream.url + "/v1")
    admin_world.admin.registry.deployments.create("shop", "chat", spec=spec)
    return admin_world


def refused(response: httpx.Response, status: int, param: str | None) -> dict[str, Any]:
    """OpenAI's error shape with ``param``; returns the ``error`` object."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["error"]
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" if status in (400, 404, 409) else True
    assert error["param"] == param, error
    assert len(error["message"]) > 20
    return dict(error)


def v1(world: World, path: str, body: Any) -> httpx.Response:
    """POST ``body`` (JSON, or bytes as they are) to ``/v1<path>`` with shop's owner key."""
    headers = {"authorization": f"Bearer {world.owner}"}
    if isinstance(body, bytes):
        return httpx.post(world.url + "/v1" + path, content=body, headers=headers, timeout=30)
    return httpx.post(world.url + "/v1" + path, json=body, headers=headers, timeout=30)


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": "chat", "messages": HELLO, "max_tokens": 5, **extra}


# ------------------------------------------------------------------ /v1 bodies

BAD_MESSAGES = [
    ([{"role": "user", "content": 42}], "messages[0].content", "must be a string or an array"),
    ([{"role": "wizard", "content": "hi"}], "messages[0].role", "Supported values are:"),
    ([{"role": "user", "content": None}], "messages[0].content", "not null"),
    (
        [{"role": "system", "content": "be brief"}, {"role": "tool", "content": "sunny"}],
        "messages[1].tool_call_id",
        "Missing required parameter",
    ),
    ([{"role": "assistant", "content": None}], "messages[0].content", "'tool_calls'"),
    (
        [{"role": "user", "content": [{"type": "video", "url": "x"}]}],
        "messages[0].content[0].type",
        "'text', 'image_url', 'input_audio', 'file'",
    ),
    (
        [{"role": "user", "content": [{"type": "text", "text": 7}]}],
        "messages[0].content[0].text",
        "must be a string, not an integer",
    ),
    (
        [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
        "messages[0].content[0].type",
        "Supported values are: 'text'",
    ),
    ([{"role": "function", "content": "x"}], "messages[0].name", "Missing required parameter"),
]


def test_messages_are_checked_as_openai_checks_them(world: World, subtests: Any) -> None:
    for messages, param, says in BAD_MESSAGES:
        with subtests.test(param=param, says=says):
            error = refused(v1(world, "/chat/completions", chat(messages=messages)), 400, param)
            assert says in error["message"], error
            assert error["code"] == "invalid_request"


def test_shapes_real_clients_send_are_accepted(world: World, subtests: Any) -> None:
    """Nulls, extensions and every role in its OpenAI shape (the fake upstream answers)."""
    conversation = [
        {"role": "developer", "content": "be brief", "name": None},
        {"role": "system", "content": [{"type": "text", "text": "and kind"}]},
        {"role": "user", "content": [{"type": "text", "text": "weather?", "cache_control": {}}]},
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "content": "sunny", "tool_call_id": "call_1"},
        {"role": "assistant", "content": "", "refusal": None},
        {"role": "user", "content": "thanks"},
    ]
    bodies = {
        "nulls": chat(temperature=None, top_p=None, stop=None, n=None, seed=None, user=None),
        "sdk extras": chat(stream_options=None, parallel_tool_calls=False, n=1, user="u-1"),
        "conversation": chat(messages=conversation),
        "features": chat(
            response_format={"type": "json_schema", "json_schema": {"name": "w", "schema": {}}},
            logprobs=True,
            top_logprobs=2,
            seed=INT64 - 1,
            logit_bias={"50256": -100},
            metadata={"team": "shop"},
            stop=["\n", "END"],
        ),
    }
    for case, body in bodies.items():
        with subtests.test(case=case):
            answer = v1(world, "/chat/completions", body)
            assert answer.status_code == 200, answer.text
            assert answer.json()["object"] == "chat.completion"


WRONG_NUMBERS = [
    ("/chat/completions", chat(temperature=True), "temperature", "must be a number, not a boolean"),
    ("/chat/completions", chat(n=True), "n", "must be an integer, not a boolean"),
    ("/chat/completions", chat(max_tokens=False), "max_tokens", "not a boolean"),
    ("/chat/completions", chat(seed=True), "seed", "not a boolean"),
    ("/chat/completions", chat(n=2.5), "n", "must be an integer, not a decimal number"),
    ("/chat/completions", chat(n=10**30), "n", "past 64 bits, but must be between 1 and 128"),
    ("/chat/completions", chat(seed=INT64), "seed", "must be between -9223372036854775808"),
    ("/chat/completions", chat(seed=-INT64 - 1), "seed", "past 64 bits, but must be between"),
    ("/chat/completions", chat(max_tokens=INT64 - 1), "max_tokens", "must be between 1 and"),
    ("/chat/completions", chat(logprobs=3), "logprobs", "must be a boolean"),
    ("/chat/completions", chat(top_logprobs=21), "top_logprobs", "between 0 and 20"),
    ("/chat/completions", chat(logit_bias={"1": 101}), "logit_bias.1", "at most 100"),
    ("/completions", {"model": "chat", "prompt": "x", "logprobs": 21}, "logprobs", "0 and 20"),
    ("/completions", {"model": "chat", "prompt": "x", "best_of": 21}, "best_of", "0 and 20"),
    ("/embeddings", {"model": "chat", "input": "x", "dimensions": True}, "dimensions", "boolean"),
    ("/embeddings", {"model": "chat", "input": "x", "dimensions": 0}, "dimensions", "between 1"),
    ("/embeddings", {"model": "chat", "input": "x", "dimensions": INT64}, "dimensions", "between"),
    ("/feedback", {"response_id": "chatcmpl-x", "score": True}, "score", "not a boolean"),
]


def test_booleans_are_not_numbers_and_integers_stay_in_range(world: World, subtests: Any) -> None:
    for path, body, param, says in WRONG_NUMBERS:
        with subtests.test(path=path, param=param, body=body):
            error = refused(v1(world, path, body), 400, param)
            assert says in error["message"], error


def test_the_model_of_the_wrong_type_is_named_as_such(world: World) -> None:
    for path, body in (
        ("/chat/completions", {"model": 123, "messages": HELLO}),
        ("/completions", {"model": 123, "prompt": "x"}),
        ("/embeddings", {"model": 123, "input": "x"}),
    ):
        error = refused(v1(world, path, body), 400, "model")
        assert error["message"] == "'model' must be a string, not an integer"
    error = refused(v1(world, "/chat/completions", {"messages": HELLO}), 400, "model")
    assert error["message"] == "you must provide a model parameter"


DUPLICATES = [
    ('{"model": "chat", "model": "other", "messages": []}', "model"),
    ('{"model": "chat", "messages": [{"role": "user", "content": "a", "role": "system"}]}', "role"),
    ('{"model": "chat", "messages": [], "metadata": {"a": "1", "b": "2", "a": "3"}}', "a"),
]


def test_a_key_named_twice_anywhere_is_refused(world: World, subtests: Any) -> None:
    for raw, key in DUPLICATES:
        with subtests.test(key=key):
            error = refused(v1(world, "/chat/completions", raw.encode()), 400, key)
            assert f"names {key!r} more than once" in error["message"]
            assert "send each field once" in error["message"]
    error = refused(
        v1(world, "/embeddings", b'{"model": "e", "input": "x", "input": "y"}'), 400, "input"
    )
    assert "more than once" in error["message"]
    twice = b'{"response_id": "chatcmpl-x", "score": 1, "score": 0}'
    refused(v1(world, "/feedback", twice), 400, "score")


def test_unknown_fields_in_feedback_are_refused(world: World) -> None:
    error = refused(
        v1(world, "/feedback", {"response_id": "x", "score": 1, "stars": 5}), 400, "stars"
    )
    assert error["message"] == "Unrecognized request argument supplied: stars"


# ------------------------------------------------------------------ /api parameters

BAD_API_PARAMS = [
    ("GET", "/api/projects/shop/deployments/chat", {"revision": str(INT64)}, "revision"),
    ("GET", "/api/projects/shop/deployments/chat", {"revision": "0"}, "revision"),
    ("GET", "/api/projects/shop/deployments/chat", {"revision": "+1"}, "revision"),
    ("GET", "/api/projects/shop/deployments/chat", {"revision": "٣"}, "revision"),
    ("DELETE", "/api/projects/shop/keys/99999999999999999999", {}, "key"),
    ("DELETE", "/api/projects/shop/keys/²", {}, "key"),
    ("DELETE", "/api/projects/shop/keys/٣", {}, "key"),
    ("GET", "/api/projects/shop/usage", {"until": "0"}, "until"),
    ("GET", "/api/projects/shop/usage", {"since": "2025-1-5"}, "since"),
    ("GET", "/api/usage", {"since": "2025-01-31T10:00"}, "since"),
    ("GET", "/api/projects/shop/audit", {"limit": "1001"}, "limit"),
    ("GET", "/api/projects/shop/audit", {"limit": " 5"}, "limit"),
]


def test_ids_numbers_and_dates_on_api_are_strict(world: World, subtests: Any) -> None:
    for method, path, params, param in BAD_API_PARAMS:
        with subtests.test(path=path, params=params):
            error = refused(world.call(method, path, world.owner, **params), 400, param)
            assert "digits 0-9" in error["message"] or "YYYY-MM-DD" in error["message"], error
    # well-formed, in range, and naming nothing: the owner's 404, as before
    gone = world.call("DELETE", f"/api/projects/shop/keys/{INT64 - 1}", world.owner)
    refused(gone, 404, None)
    assert (
        world.call(
            "GET", "/api/projects/shop/deployments/chat", world.owner, revision="1"
        ).status_code
        == 200
    )
    report = world.call("GET", "/api/projects/shop/usage", world.owner, until="2999-12-31")
    assert report.status_code == 200, report.text


BAD_API_BODIES: list[tuple[dict[str, Any], str | None]] = [
    ({"requests_per_minute": True}, "requests_per_minute"),
    ({"requests_per_minute": "5"}, "requests_per_minute"),
    ({"requests_per_minute": 2.5}, "requests_per_minute"),
    ({"requests_per_minute": 2**31}, "requests_per_minute"),  # PostgreSQL's integer column
    ({"tokens_per_day": INT64}, "tokens_per_day"),
    ({"budget_usd_per_month": True}, "budget_usd_per_month"),
]


def test_api_bodies_are_strict(world: World, subtests: Any) -> None:
    for body, param in BAD_API_BODIES:
        with subtests.test(body=body):
            refused(world.call("PATCH", "/api/projects/shop/quota", world.owner, body), 400, param)
    for raw, param in (
        (b'{"requests_per_minute": 5, "requests_per_minute": 9}', "requests_per_minute"),
        (b'{"budget_usd_per_month": NaN}', None),
        (b'{"budget_usd_per_month": Infinity}', None),
    ):
        with subtests.test(raw=raw):
            answer = httpx.patch(
                world.url + "/api/projects/shop/quota",
                content=raw,
                headers={"authorization": f"Bearer {world.owner}"},
            )
            refused(answer, 400, param)
    limits = world.call("GET", "/api/projects/shop/quota", world.owner).json()["limits"]
    assert limits["requests_per_minute"] is None and limits["budget_usd_per_month"] is None


# ------------------------------------------------------------------ a client that leaves


def send_half_and_leave(url: str, path: str, key: str) -> None:
    """Headers that promise 2000 bytes, 1000 of them, then the connection closes."""
    host, port = url.removeprefix("http://").split(":")
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
        "Content-Type: application/json\r\nX-Request-Id: leaver-1\r\nContent-Length: 2000\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(head.encode() + b'{"model": "chat", "messages": [' + b" " * 968)


def test_a_client_that_leaves_mid_body_is_one_info_line(
    world: World, caplog: pytest.LogCaptureFixture, wait_until: Callable[..., bool]
) -> None:
    caplog.set_level(logging.INFO)
    paths = ["/v1/chat/completions", "/v1/embeddings", "/v1/completions"]
    for path in paths:
        send_half_and_leave(world.url, path, world.owner)

    def gone() -> list[logging.LogRecord]:
        return [r for r in caplog.records if "went away" in r.getMessage()]

    assert wait_until(lambda: len(gone()) == len(paths), timeout=10), caplog.text
    for record, path in zip(
        sorted(gone(), key=lambda r: r.getMessage()), sorted(paths), strict=True
    ):
        assert record.levelno == logging.INFO and record.name == "genai.gateway"
        assert "request leaver-1" in record.getMessage() and path in record.getMessage()
    send_half_and_leave(world.url, "/api/projects/shop/members", world.owner)  # FastAPI's own
    assert world.chat(world.owner).status_code == 200  # still serving, and the requests above
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert loud == [], [r.getMessage() for r in loud]
    assert "unhandled error" not in caplog.text and "Traceback" not in caplog.text
    metrics = httpx.get(world.url + "/metrics", headers={"authorization": f"Bearer {OPERATOR}"})
    assert 'status="500"' not in metrics.text


# ------------------------------------------------------------------ keys per project


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def capped(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Any]:
    """A platform allowing 3 active keys per project, on SQLite and on PostgreSQL."""
    import genai
    from genai import Settings

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'cap.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    settings = Settings(
        home=tmp_path / "home", database_url=url, user="admin", max_keys_per_project=3
    )
    genai.init(settings, admin="admin")
    admin = genai.connect(settings, user="admin")
    admin.projects.create("shop")
    yield settings, admin
    admin.store.dispose()


def test_active_keys_per_project_are_capped(capped: Any) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from genai.store import schema as t

    _, admin = capped
    short = admin.keys.create("shop", role="viewer", name="short", expires_in=timedelta(days=1))
    keys = [admin.keys.create("shop", role="viewer", name=f"k{i}") for i in range(2)]
    with pytest.raises(ConflictError) as caught:
        admin.keys.create("shop", role="viewer", name="one-more")
    message = caught.value.message
    assert "project 'shop' has 3 active API keys" in message
    assert "GENAI_MAX_KEYS_PER_PROJECT=3" in message and "genai key revoke" in message
    admin.keys.revoke("shop", keys[0].prefix)
    admin.keys.create("shop", role="viewer", name="again")  # a revoked key leaves room
    with pytest.raises(ConflictError):
        admin.keys.create("shop", role="viewer", name="one-more")
    with admin.store.session() as s:  # the short key's day is over: it no longer counts
        s.execute(
            update(t.ApiKey)
            .where(t.ApiKey.prefix == short.prefix.removeprefix("gk_"))
            .values(expires_at=t.utcnow() - timedelta(seconds=1))
        )
    admin.keys.create("shop", role="viewer", name="after-expiry")
    assert len(admin.keys.list("shop")) == 4  # the list still shows the expired one


def test_the_last_slot_goes_to_one_of_two_creators(capped: Any) -> None:
    """Counted inside the creating transaction: two at once cannot both take the last slot."""
    _, admin = capped
    for i in range(2):
        admin.keys.create("shop", role="viewer", name=f"k{i}")
    outcomes: list[str] = []
    start = threading.Barrier(4)

    def create(i: int) -> None:
        start.wait()
        try:
            admin.keys.create("shop", role="viewer", name=f"race{i}")
            outcomes.append("created")
        except ConflictError:
            outcomes.append("refused")

    threads = [threading.Thread(target=create, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["created", "refused", "refused", "refused"]
    assert len(admin.keys.list("shop")) == 3


def test_the_cap_is_a_409_on_api(capped: Any, gateway_server: Any) -> None:
    settings, admin = capped
    key = admin.keys.create("shop", role="owner", name="ops").secret
    live = gateway_server(settings, admin=mount_admin)
    headers = {"authorization": f"Bearer {key}"}
    made = [
        httpx.post(f"{live.url}/api/projects/shop/keys", headers=headers, json={"role": "viewer"})
        for _ in range(3)
    ]
    assert [m.status_code for m in made] == [201, 201, 409]
    error = refused(made[-1], 409, None)
    assert error["code"] == "conflict" and "GENAI_MAX_KEYS_PER_PROJECT" in error["message"]


# ------------------------------------------------------------------ the document


def test_openapi_states_the_bodies_and_every_error(world: World) -> None:
    doc = world.call("GET", "/openapi.json", None).json()
    schemas = doc["components"]["schemas"]
    chat_op = doc["paths"]["/v1/chat/completions"]["post"]
    body = chat_op["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/ChatCompletionRequest"}
    request = schemas["ChatCompletionRequest"]
    assert request["additionalProperties"] is False
    assert {"model", "messages", "tools", "response_format", "prompt"} <= set(request["properties"])
    roles = {
        m["$ref"].rsplit("/", 1)[1]
        for m in request["properties"]["messages"]["anyOf"][0]["items"]["oneOf"]
    }
    assert roles == {
        "SystemMessage",
        "DeveloperMessage",
        "UserMessage",
        "AssistantMessage",
        "ToolMessage",
        "FunctionMessage",
    }
    assert "tool_call_id" in schemas["ToolMessage"]["required"]
    ok = chat_op["responses"]["200"]["content"]
    assert set(ok) == {"application/json", "text/event-stream"}
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "422" not in responses, (method, path)
            if path.startswith(("/v1/", "/api/")):
                errors = [s for s in responses if s.startswith("4")]
                assert "401" in errors and (method == "get" or "400" in errors), (method, path)
                for status in errors:
                    content = responses[status]["content"]["application/json"]["schema"]
                    assert content == {"$ref": "#/components/schemas/ErrorBody"}, (path, status)
                success = [s for s in responses if s.startswith("2")]
                assert success, (method, path)
    assert set(schemas["ErrorDetail"]["required"]) == {"message", "type", "param", "code"}
