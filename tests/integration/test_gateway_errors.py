"""What the gateway answers when something is wrong: bad or missing keys (401), roles that
may not call models (403), bad request bodies (400, 413), unusable deployments, and
upstreams that misbehave. Every refusal is in OpenAI's error shape (or an error event that
ends a stream), and the gateway keeps serving after each one.
"""

from __future__ import annotations

import json
import socket
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from openai.types.chat import ChatCompletionMessageParam

from genai.gateway import GatewayOptions
from genai.testing import FakeOpenAIServer, running_server

PROJECT = "proj-a"
BASE = "tiny-llama"
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hello"}]
LIMIT = 4096


# SQLite only here (test_gateway_isolation runs the gateway on PostgreSQL too).
pytestmark = pytest.mark.sqlite_only


@pytest.fixture(scope="module")
def vendor():
    """The vLLM-like fake upstream (its ``mode`` makes it misbehave)."""
    fake = FakeOpenAIServer()
    with running_server(fake.app) as url:
        fake.url = url
        yield fake


class OddUpstream:
    """An upstream that answers every generation with ``answer``: some JSON that is not
    an OpenAI response."""

    def __init__(self) -> None:
        self.answer: Any = {}
        self.url = ""  # where it runs: set by the fixture
        self.app = FastAPI()
        self.app.post("/v1/chat/completions")(self._reply)
        self.app.post("/v1/completions")(self._reply)

    async def _reply(self) -> JSONResponse:
        return JSONResponse(self.answer)


@pytest.fixture(scope="module")
def odd():
    upstream = OddUpstream()
    with running_server(upstream.app) as url:
        upstream.url = url
        yield upstream


@pytest.fixture
def world(platform, settings, model_server, vendor, odd, http, gateway_server):
    """proj-a: ``chat`` on genai serve, ``vendor`` on the fake, ``broken`` with a spec that
    cannot route; a developer and a viewer key; a gateway with a 4 KiB body limit."""
    vendor.mode = "ok"
    admin = platform()
    admin.projects.create(PROJECT)
    deployments = admin.registry.deployments
    local = {"name": "local", "url": model_server.v1, "model": BASE}
    deployments.create(PROJECT, "chat", spec={"targets": [local], "retries": 0})
    deployments.create(
        PROJECT,
        "vendor",
        spec={"targets": [{"name": "acme", "url": vendor.url, "model": "fake-base"}], "retries": 0},
    )
    deployments.create(
        PROJECT,
        "odd",
        spec={
            "targets": [{"name": "odd", "url": odd.url, "model": "m"}],
            "retries": 0,
            "circuit": {"failures": 100},
        },
    )
    deployments.create(PROJECT, "broken", spec={"targets": [{"name": "nowhere"}]})
    deployments.create(PROJECT, "empty")  # a revision without any spec
    options = GatewayOptions(max_body_bytes=LIMIT, key_cache_ttl_s=0.2, ledger_interval_s=0.05)
    gw = gateway_server(settings, options=options)
    key = admin.keys.create(PROJECT, role="developer", name="dev").secret
    return SimpleNamespace(
        admin=admin,
        http=http,
        gw=gw,
        key=key,
        viewer=admin.keys.create(PROJECT, role="viewer", name="viewer").secret,
        vendor=vendor,
        odd=odd,
        client=openai.OpenAI(base_url=gw.v1, api_key=key, max_retries=0, timeout=30),
    )


def post(world: Any, path: str, body: Any, key: str | None = None, **kwargs: Any) -> httpx.Response:
    http: httpx.Client = world.http
    headers = {"authorization": f"Bearer {key or world.key}", **kwargs.pop("headers", {})}
    if isinstance(body, bytes):
        return http.post(world.gw.v1 + path, headers=headers, content=body, **kwargs)
    return http.post(world.gw.v1 + path, headers=headers, json=body, **kwargs)


def openai_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The body is OpenAI's error shape; returns its ``error`` object."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["error"]
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and len(error["message"]) > 10
    if code is not None:
        assert error["code"] == code, error
    return dict(error)


def still_serving(world: Any) -> None:
    reply = world.client.chat.completions.create(model="chat", messages=HELLO, max_tokens=2)
    assert reply.choices[0].finish_reason in ("length", "stop")


def chat(model: str = "chat", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": HELLO, "max_tokens": 2, **extra}


ENDPOINTS = {
    "chat": ("POST", "/chat/completions", chat()),
    "completions": ("POST", "/completions", {"model": "chat", "prompt": "Hi", "max_tokens": 2}),
    "embeddings": ("POST", "/embeddings", {"model": "chat", "input": "Hi"}),
    "models": ("GET", "/models", None),
    "feedback": ("POST", "/feedback", {"response_id": "chatcmpl-x", "score": 1}),
}


def call(world: Any, endpoint: str, authorization: str | None) -> httpx.Response:
    method, path, body = ENDPOINTS[endpoint]
    headers = {} if authorization is None else {"authorization": authorization}
    http: httpx.Client = world.http
    return http.request(method, world.gw.v1 + path, headers=headers, json=body)


# ------------------------------------------------------------------ keys


UNKNOWN_KEY = "gk_" + "q" * 10 + "_" + "Z" * 43


BAD_AUTHORIZATION = {
    "missing": (None, "no API key"),
    "empty": ("Bearer", "no API key"),
    "basic": ("Basic dXNlcjpwYXNz", "no API key"),
    "malformed": ("Bearer not-a-key", "malformed API key"),
    "short": ("Bearer gk_short_key", "malformed API key"),
    "unknown": (f"Bearer {UNKNOWN_KEY}", "unknown API key gk_qqqqqqqqqq_…"),
}


def test_bad_keys_get_401_on_every_endpoint(world, subtests):
    for case, (authorization, says) in BAD_AUTHORIZATION.items():
        for endpoint in ENDPOINTS:
            with subtests.test(case=case, endpoint=endpoint):
                error = openai_error(call(world, endpoint, authorization), 401, "invalid_api_key")
                assert error["type"] == "authentication_error"
                assert says in error["message"]
                assert "Z" * 43 not in error["message"]  # a key's secret is never echoed


def test_the_sdk_sees_authentication_errors(world):
    client = openai.OpenAI(base_url=world.gw.v1, api_key=UNKNOWN_KEY, max_retries=0)
    with pytest.raises(openai.AuthenticationError, match="unknown API key"):
        client.chat.completions.create(model="chat", messages=HELLO)
    with pytest.raises(openai.AuthenticationError):
        client.models.list()


def test_a_revoked_key_stops_working_within_the_cache_ttl(world, wait_until):
    key = world.admin.keys.create(PROJECT, role="developer", name="leaked")
    assert post(world, "/chat/completions", chat(), key=key.secret).status_code == 200
    world.admin.keys.revoke(PROJECT, key.prefix)
    # cached 0.2 s here: a key never re-checked (10 s by default) would outlast the wait
    assert wait_until(
        lambda: call(world, "models", f"Bearer {key.secret}").status_code == 401, timeout=8
    )
    for endpoint in ENDPOINTS:
        error = openai_error(call(world, endpoint, f"Bearer {key.secret}"), 401)
        assert "was revoked" in error["message"]
    still_serving(world)


def test_an_expired_key_is_refused_even_while_cached(world, settings, gateway_server, wait_until):
    """The key cache (10 s by default) never keeps a key past its expiry."""
    gw = gateway_server(settings)  # default options: callers cached for 10 s
    key = world.admin.keys.create(
        PROJECT, role="developer", name="short", expires_in=timedelta(seconds=1.5)
    ).secret
    headers = {"authorization": f"Bearer {key}"}
    assert world.http.get(gw.v1 + "/models", headers=headers).status_code == 200
    assert wait_until(
        lambda: world.http.get(gw.v1 + "/models", headers=headers).status_code == 401, timeout=5
    )
    refused = world.http.post(gw.v1 + "/chat/completions", headers=headers, json=chat())
    assert "expired at" in openai_error(refused, 401, "invalid_api_key")["message"]


def test_a_viewer_key_may_list_models_but_not_call_them(world):
    for endpoint in ("chat", "completions", "embeddings", "feedback"):
        error = openai_error(call(world, endpoint, f"Bearer {world.viewer}"), 403, "forbidden")
        assert error["type"] == "permission_error"
        assert "role viewer" in error["message"] and "developer or higher" in error["message"]
    listed = call(world, "models", f"Bearer {world.viewer}")
    assert listed.status_code == 200
    assert [m["id"] for m in listed.json()["data"]] == ["broken", "chat", "empty", "odd", "vendor"]
    client = openai.OpenAI(base_url=world.gw.v1, api_key=world.viewer, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model="chat", messages=HELLO, stream=True)


# ------------------------------------------------------------------ bodies


def padded(size: int) -> bytes:
    """A valid chat request of exactly ``size`` bytes."""
    body = json.dumps(chat()).encode()
    return body[:-1] + b" " * (size - len(body)) + b"}"


def test_the_body_limit_is_exact(world):
    assert post(world, "/chat/completions", padded(LIMIT)).status_code == 200
    error = openai_error(post(world, "/chat/completions", padded(LIMIT + 1)), 413)
    assert error["code"] == "payload_too_large"
    assert f"at most {LIMIT}" in error["message"]
    big = {"model": "chat", "input": "word " * 1000}
    openai_error(post(world, "/embeddings", big), 413, "payload_too_large")
    with pytest.raises(openai.APIStatusError) as caught:
        world.client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "x" * LIMIT}]
        )
    assert caught.value.status_code == 413
    still_serving(world)


def raw_exchange(url: str, head: str, body: bytes, *, timeout: float = 5.0) -> bytes:
    """Send a hand-made HTTP/1.1 request; the answer's head and body (never waits long)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + body)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.endswith((b"}", b".")):
            part = sock.recv(65536)
            if not part:
                break
            answer += part
    return answer


def request_head(world: Any, extra: str) -> str:
    host = world.gw.url.removeprefix("http://")
    return (
        f"POST /v1/chat/completions HTTP/1.1\nHost: {host}\n"
        f"Authorization: Bearer {world.key}\nContent-Type: application/json\n{extra}\n"
    )


def test_a_chunked_body_is_refused_at_the_limit_before_it_ends(world):
    """No Content-Length: the gateway stops reading at the limit (it does not wait for, or
    hold, the rest); the body here never ends, so only an early answer can arrive."""
    piece = b"x" * (LIMIT + 10)
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"  # no closing 0-chunk
    answer = raw_exchange(world.gw.url, request_head(world, "Transfer-Encoding: chunked\n"), chunk)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b'"code":"payload_too_large"' in answer
    still_serving(world)


def test_a_lying_content_length(world):
    # claims more than the limit: refused at once, the body is never awaited
    answer = raw_exchange(
        world.gw.url, request_head(world, "Content-Length: 999999\n"), b'{"model": "chat"}'
    )
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    # claims less than it sends: the gateway reads what was claimed, which is not the request
    body = json.dumps(chat()).encode() + b" " * (LIMIT * 2)
    answer = raw_exchange(world.gw.url, request_head(world, "Content-Length: 20\n"), body)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    still_serving(world)


MALFORMED = [
    (b'{"model": "chat", "messages": [', "not valid JSON"),
    (b"", "not valid JSON"),
    (b"\xff\xfe{}", "not valid JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (b'"chat"', "must be a JSON object"),
]


def test_malformed_json(world, subtests):
    for body, says in MALFORMED:
        with subtests.test(body=body):
            error = openai_error(post(world, "/chat/completions", body), 400, "invalid_request")
            assert says in error["message"]
            assert error["type"] == "invalid_request_error"
    still_serving(world)


UNKNOWN_FIELDS = [
    ("/chat/completions", chat(fancy_mode=True), "fancy_mode"),
    ("/chat/completions", chat(input="Hi"), "input"),
    ("/completions", {"model": "chat", "prompt": "Hi", "messages": HELLO}, "messages"),
    ("/embeddings", {"model": "chat", "input": "Hi", "temperature": 1}, "temperature"),
]


def test_unknown_fields_are_refused_as_openai_refuses_them(world, subtests):
    for path, body, field in UNKNOWN_FIELDS:
        with subtests.test(path=path, field=field):
            error = openai_error(post(world, path, body), 400, "invalid_request")
            assert error["message"] == f"Unrecognized request argument supplied: {field}"
            assert error["param"] == field


def test_the_sdk_reports_unknown_fields(world):
    with pytest.raises(openai.BadRequestError, match="Unrecognized request argument supplied"):
        world.client.chat.completions.create(model="chat", messages=HELLO, extra_body={"top_k": 5})


OUT_OF_RANGE = [
    ("n", 0),
    ("n", 129),
    ("max_tokens", 0),
    ("max_tokens", -5),
    ("max_completion_tokens", 0),
    ("temperature", 2.01),
    ("temperature", -0.1),
    ("top_p", 1.5),
    ("top_p", -1),
    ("presence_penalty", 2.5),
    ("frequency_penalty", -3),
]


def test_numbers_out_of_range(world, subtests):
    for field, value in OUT_OF_RANGE:
        with subtests.test(field=field, value=value):
            error = openai_error(post(world, "/chat/completions", {**chat(), field: value}), 400)
            assert error["param"] == field
            assert f"'{field}' is {value}, but must be between" in error["message"]
    at_the_edges = chat(n=1, temperature=2, top_p=1, presence_penalty=-2, frequency_penalty=2)
    accepted = post(world, "/chat/completions", at_the_edges)
    assert accepted.status_code == 200, accepted.text


WRONG_TYPES = [
    ("/chat/completions", chat(temperature="hot"), "temperature"),
    ("/chat/completions", chat(temperature=True), "temperature"),
    ("/chat/completions", chat(max_tokens="2"), "max_tokens"),
    ("/chat/completions", chat(n=[1]), "n"),
    ("/chat/completions", chat(stream="yes"), "stream"),
    ("/chat/completions", {"model": "chat", "messages": "Hello"}, "messages"),
    ("/chat/completions", {"model": "chat", "messages": []}, "messages"),
    ("/chat/completions", {"model": "chat", "messages": [{"content": "x"}]}, "messages"),
    ("/chat/completions", {"model": "chat", "messages": ["Hello"]}, "messages"),
    ("/chat/completions", {"messages": HELLO}, "model"),
    ("/chat/completions", {"model": 7, "messages": HELLO}, "model"),
    ("/chat/completions", {"model": "", "messages": HELLO}, "model"),
    ("/completions", {"model": "chat", "prompt": 42}, "prompt"),
    ("/completions", {"model": "chat"}, "prompt"),
    ("/embeddings", {"model": "chat", "input": []}, "input"),
    ("/embeddings", {"model": "chat", "input": 3}, "input"),
]


def test_wrong_types(world, subtests):
    for path, body, field in WRONG_TYPES:
        with subtests.test(path=path, body=body):
            error = openai_error(post(world, path, body), 400, "invalid_request")
            assert error["param"] == field
    still_serving(world)


def test_a_deployment_whose_spec_cannot_route(world):
    for model, problem in (
        ("broken", "needs exactly one of url and backend"),
        ("empty", "targets"),
    ):
        for stream in (False, True):
            error = openai_error(post(world, "/chat/completions", chat(model, stream=stream)), 400)
            assert f"deployment '{model}' (revision 1) cannot take traffic" in error["message"]
            assert problem in error["message"]
            assert error["param"] == "model"
        error = openai_error(post(world, "/embeddings", {"model": model, "input": "x"}), 400)
        assert "cannot take traffic" in error["message"]
    still_serving(world)


# ------------------------------------------------------------------ upstreams


def test_an_upstream_400_is_passed_on_with_its_reason(world):
    too_long = chat(max_tokens=5000)
    for stream in (False, True):
        error = openai_error(post(world, "/chat/completions", {**too_long, "stream": stream}), 400)
        assert error["message"].startswith("local refused the request (HTTP 400): ")
        assert "context window is 2048 tokens" in error["message"]
    with pytest.raises(openai.BadRequestError, match="context window"):
        world.client.completions.create(model="chat", prompt="Hi", max_tokens=5000)
    world.vendor.mode = "unprocessable"
    error = openai_error(post(world, "/chat/completions", chat("vendor", stream=True)), 400)
    assert error["message"] == "acme refused the request (HTTP 422)"
    still_serving(world)


def test_an_upstream_refusing_the_gateway_itself_is_a_502(world):
    """401/403/404 from a target mean the deployment is misconfigured, not the request."""
    world.vendor.mode = "forbidden"
    for stream in (False, True):
        error = openai_error(post(world, "/chat/completions", chat("vendor", stream=stream)), 502)
        assert error["message"].startswith(
            "acme refused the request (HTTP 403): This key may not use this model."
        )
        assert "misconfigured" in error["message"]
    still_serving(world)


def test_an_upstream_answering_garbage_is_a_502(world):
    world.vendor.mode = "garbage"  # an HTML page with status 200
    error = openai_error(post(world, "/chat/completions", chat("vendor")), 502, "backend_error")
    assert error["type"] == "server_error"
    assert "acme answered with something that is not JSON" in error["message"]
    with pytest.raises(openai.InternalServerError, match="not JSON"):
        world.client.completions.create(model="vendor", prompt="Hi")
    world.vendor.mode = "ok"
    assert world.client.chat.completions.create(model="vendor", messages=HELLO).choices
    still_serving(world)


def test_an_upstream_answering_json_that_is_not_openais_is_a_502(world, subtests):
    for answer in ({"result": "fine"}, [1, 2], {"choices": "none"}, "text", None):
        world.odd.answer = answer
        for path, body in (
            ("/chat/completions", chat("odd")),
            ("/completions", {"model": "odd", "prompt": "Hi"}),
        ):
            with subtests.test(answer=answer, path=path):
                error = openai_error(post(world, path, body), 502, "backend_error")
                assert "odd answered with JSON that is not an OpenAI response" in error["message"]
    still_serving(world)


def stream_events(world: Any, model: str = "vendor") -> list[Any]:
    response = post(world, "/chat/completions", chat(model, stream=True, max_tokens=None))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    raw = response.content
    assert raw.endswith(b"\n\n")
    events = [e.removeprefix(b"data: ") for e in raw.split(b"\n\n")[:-1]]
    return [e.decode() if e == b"[DONE]" else json.loads(e) for e in events]


@pytest.mark.parametrize(
    ("mode", "says"),
    [
        ("garbage", "acme sent an event that is not JSON"),
        ("not_sse", "acme closed the stream before its first event"),
    ],
)
def test_a_stream_that_fails_before_its_first_event_is_a_502(world, wait_until, mode, says):
    """Nothing was sent to the client yet: the gateway answers as for a whole answer (a
    502 it may still avoid with a retry or a fallback, see test_gateway_resilience)."""
    world.vendor.mode = mode
    response = post(world, "/chat/completions", chat("vendor", stream=True, max_tokens=None))
    assert response.status_code == 502
    error = response.json()["error"]
    assert says in error["message"] and error["type"] == "server_error"
    with pytest.raises(openai.APIStatusError, match=says):
        list(world.client.chat.completions.create(model="vendor", messages=HELLO, stream=True))
    world.vendor.mode = "ok"
    still_serving(world)
    assert wait_until(lambda: sorted(ledger_statuses(world)) == ["ok", *["upstream_error"] * 2])


@pytest.mark.parametrize(
    ("mode", "says", "pieces"),
    [
        ("eof", "the stream ended before [DONE]", 5),
        ("drop", "acme dropped the stream", 2),
    ],
)
def test_a_broken_stream_ends_with_an_error_event(world, wait_until, mode, says, pieces):
    world.vendor.mode = mode
    events = stream_events(world)
    *chunks, last = events
    error = last["error"]
    assert error["message"].startswith(f"the stream from deployment 'vendor' failed: {says}")
    assert (error["type"], error["param"], error["code"]) == (
        "server_error",
        None,
        "upstream_error",
    )
    assert "[DONE]" not in events
    texts = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]]
    assert len([t for t in texts if t]) == pieces

    stream = world.client.chat.completions.create(model="vendor", messages=HELLO, stream=True)
    with pytest.raises(openai.APIError, match="failed"):
        list(stream)
    world.vendor.mode = "ok"
    still_serving(world)
    assert wait_until(lambda: sorted(ledger_statuses(world)) == ["ok", *["upstream_error"] * 2])


def ledger_statuses(world: Any) -> list[str]:
    from sqlalchemy import select

    from genai.store import schema as t

    assert world.gw.gateway.ledger.flush()
    with world.admin.store.session() as s:
        return list(s.scalars(select(t.UsageRecord.status).order_by(t.UsageRecord.id)))


def test_an_upstream_error_event_reaches_the_client(world, wait_until):
    world.vendor.mode = "error_event"
    events = stream_events(world)
    assert events[-2] == {
        "error": {
            "message": "The engine died mid-stream.",
            "type": "InternalServerError",
            "code": 500,
        }
    }
    assert events[-1] == "[DONE]"
    with pytest.raises(openai.APIError, match="The engine died mid-stream"):
        list(world.client.chat.completions.create(model="vendor", messages=HELLO, stream=True))
    assert wait_until(lambda: ledger_statuses(world) == ["upstream_error"] * 2)
    world.vendor.mode = "ok"
    still_serving(world)


def test_an_embedding_upstream_that_is_down_is_a_502(world):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    world.admin.registry.deployments.create(
        PROJECT,
        "vectors",
        spec={
            "kind": "embedding",
            "targets": [{"name": "down", "url": f"http://127.0.0.1:{port}/v1", "model": "e5"}],
        },
    )
    error = openai_error(post(world, "/embeddings", {"model": "vectors", "input": "x"}), 502)
    assert error["code"] == "backend_error"
    assert error["message"].startswith("deployment 'vectors': down failed: ")
    still_serving(world)
