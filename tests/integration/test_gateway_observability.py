"""What operators see of the gateway: Prometheus ``/metrics`` (guarded by the operator token
when one is set), the JSON access log (request ids and numbers, never prompt text unless a
project turns ``prompt_logging`` on), and OpenTelemetry spans when enabled.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import openai
import pytest
from _servers import closed_port_url
from openai.types.chat import ChatCompletionMessageParam

from genai.errors import DlpBlocked
from genai.gateway import CachedAnswer, GatewayRequest, Stages

PROJECT, LOGGED = "proj-a", "proj-logged"
BASE = "tiny-llama"
SECRET_PROMPT = "my locker code is PURPLE-ELEPHANT-7"


# SQLite only here (test_gateway_isolation runs the gateway on PostgreSQL too).
pytestmark = pytest.mark.sqlite_only


@pytest.fixture
def world(platform, settings, model_server):
    """proj-a: ``chat`` on the model server and ``flaky`` on a port nobody listens on;
    proj-logged: ``chat`` too, with prompt logging on."""
    admin = platform()
    keys = {}
    for project in (PROJECT, LOGGED):
        admin.projects.create(project)
        admin.registry.deployments.create(
            project,
            "chat",
            spec={"targets": [{"name": "local", "url": model_server.v1, "model": BASE}]},
        )
        keys[project] = admin.keys.create(project, role="developer").secret
    flaky = closed_port_url()  # nothing listens there
    admin.registry.deployments.create(
        PROJECT,
        "flaky",
        spec={
            "targets": [{"name": "dead", "url": flaky, "model": "m"}],
            "retries": 0,
            "circuit": {"failures": 2, "reset_s": 60},
        },
    )
    admin.projects.set_option(LOGGED, "prompt_logging", True)
    return SimpleNamespace(admin=admin, keys=keys, key=keys[PROJECT], flaky=flaky)


def client(gw: Any, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.v1, api_key=key, max_retries=0, timeout=30)


def scrape(gw: Any, token: str | None = None) -> str:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = httpx.get(gw.url + "/metrics", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def sample(text: str, name: str, **labels: str) -> float | None:
    """The sum of the samples of ``name`` whose labels include ``labels`` (None: none)."""
    total = None
    for line in text.splitlines():
        match = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total = (total or 0.0) + float(match.group(3))
    return total


# ------------------------------------------------------------------ /metrics


def test_metrics_count_requests_time_and_tokens(world, gateway_server, settings, wait_until):
    gw = gateway_server(settings)
    sdk = client(gw, world.key)
    whole = sdk.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "Hi"}], max_tokens=3
    )
    chunks = list(
        sdk.chat.completions.create(
            model="chat",
            messages=[{"role": "user", "content": "Hi"}],
            max_tokens=4,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    completion = sdk.completions.create(model="chat", prompt="Hello", max_tokens=2)
    with pytest.raises(openai.NotFoundError):
        sdk.chat.completions.create(model="nope", messages=[{"role": "user", "content": "Hi"}])
    usages = [u for u in (whole.usage, chunks[-1].usage, completion.usage) if u is not None]
    assert len(usages) == 3

    prompt = sum(u.prompt_tokens for u in usages)
    completion_tokens = sum(u.completion_tokens for u in usages)
    assert wait_until(
        lambda: (
            sample(scrape(gw), "genai_gateway_tokens_total", kind="completion") == completion_tokens
        ),
        timeout=5,
    )
    text = scrape(gw)
    requests = "genai_gateway_requests_total"
    assert sample(text, requests, project=PROJECT, model="chat", endpoint="chat", status="200") == 2
    assert sample(text, requests, project=PROJECT, endpoint="completions", status="200") == 1
    assert sample(text, requests, endpoint="chat", status="404") == 1
    assert sample(text, "genai_gateway_tokens_total", project=PROJECT, kind="prompt") == prompt
    assert sample(text, "genai_gateway_request_seconds_count", endpoint="chat") == 2
    assert sample(text, "genai_gateway_request_seconds_count", endpoint="completions") == 1
    assert sample(text, "genai_gateway_overhead_seconds_count") == 3
    overhead = sample(text, "genai_gateway_overhead_seconds_sum")
    total = sample(text, "genai_gateway_request_seconds_sum")
    assert overhead is not None and total is not None
    assert 0 < overhead < total
    assert sample(text, "genai_gateway_upstream_seconds_count", target="local") == 3
    assert sample(text, "genai_gateway_overhead_seconds_bucket", le="+Inf") == 3
    assert sample(text, "genai_gateway_ledger_pending") is not None


def test_metrics_show_upstream_errors_by_target_and_circuit_state(
    world, gateway_server, settings, model_server
):
    gw = gateway_server(settings)
    sdk = client(gw, world.key)
    ask: dict[str, Any] = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
    sdk.chat.completions.create(model="chat", **ask)
    for _ in range(2):
        with pytest.raises(openai.APIStatusError) as caught:
            sdk.chat.completions.create(model="flaky", **ask)
        assert caught.value.status_code == 502
    with pytest.raises(openai.APIStatusError) as caught:
        sdk.chat.completions.create(model="flaky", **ask)
    assert caught.value.status_code == 503  # the circuit is open: the target is not called

    text = scrape(gw)
    assert sample(text, "genai_gateway_upstream_errors_total", target="dead") == 2
    assert (
        sample(text, "genai_gateway_upstream_errors_total", target="dead", reason="connection") == 2
    )
    assert sample(text, "genai_gateway_upstream_errors_total", target="local") is None
    circuit = "genai_gateway_circuit_state"
    assert sample(text, circuit, upstream=f"{world.flaky}|m") == 2  # open
    assert sample(text, circuit, upstream=f"{model_server.v1}|{BASE}") == 0  # closed
    assert sample(text, "genai_gateway_requests_total", model="flaky", status="502") == 2
    assert sample(text, "genai_gateway_requests_total", model="flaky", status="503") == 1


class MemoCache:
    """The smallest cache stage: exact messages of one project and deployment."""

    name = "memo"

    def __init__(self) -> None:
        self.entries: dict[str, dict[str, Any]] = {}

    def key(self, request: GatewayRequest) -> str:
        return json.dumps([request.project_id, request.deployment, request.body["messages"]])

    async def lookup(self, request: GatewayRequest) -> CachedAnswer | None:
        entry = self.entries.get(self.key(request))
        return None if entry is None else CachedAnswer(entry)

    async def store(self, request: GatewayRequest, response: dict[str, Any]) -> None:
        self.entries[self.key(request)] = response


def test_metrics_count_cache_lookups(world, gateway_server, settings):
    gw = gateway_server(settings, stages=Stages(cache=MemoCache()))
    sdk = client(gw, world.key)
    ask: dict[str, Any] = {
        "model": "chat",
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 2,
    }
    results = [
        sdk.chat.completions.with_raw_response.create(**ask).headers["x-genai-cache"]
        for _ in range(3)
    ]
    assert results == ["miss", "hit", "hit"]
    text = scrape(gw)
    lookups = "genai_gateway_cache_lookups_total"
    assert sample(text, lookups, project=PROJECT, result="miss") == 1
    assert sample(text, lookups, project=PROJECT, result="hit") == 2
    assert sample(text, "genai_gateway_upstream_seconds_count", target="local") == 1


def test_metrics_without_a_cache_have_no_cache_lookups(world, gateway_server, settings):
    gw = gateway_server(settings)
    reply = client(gw, world.key).chat.completions.with_raw_response.create(
        model="chat", messages=[{"role": "user", "content": "Hi"}], max_tokens=2
    )
    assert "x-genai-cache" not in reply.headers
    assert sample(scrape(gw), "genai_gateway_cache_lookups_total") is None


def test_the_operator_token_guards_metrics(world, gateway_server, settings_factory):
    gw = gateway_server(settings_factory(admin_token="op-token-123"))
    for headers in (
        {},
        {"authorization": "Bearer wrong"},
        {"authorization": f"Bearer {world.key}"},  # a project key is not the operator
        {"authorization": "op-token-123x"},
    ):
        refused = httpx.get(gw.url + "/metrics", headers=headers, timeout=10)
        assert refused.status_code == 401
        error = refused.json()["error"]
        assert error["code"] == "invalid_api_key"
        assert "GENAI_ADMIN_TOKEN" in error["message"]
        assert "op-token-123" not in refused.text
    assert "genai_gateway_requests_total" in scrape(gw, "op-token-123")
    assert httpx.get(gw.url + "/health", timeout=10).json()["status"] == "ok"
    # the operator token is not a project key
    assert client(gw, world.key).models.list().data
    with pytest.raises(openai.AuthenticationError):
        client(gw, "op-token-123").models.list()


# ------------------------------------------------------------------ the access log


def access_records(caplog: Any) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "genai.gateway.access"]


def test_the_access_log_has_ids_and_numbers_but_no_prompts(
    world, gateway_server, settings, caplog, wait_until
):
    caplog.set_level(logging.INFO, logger="genai")
    gw = gateway_server(settings)
    sdk = client(gw, world.key)
    secret: list[ChatCompletionMessageParam] = [{"role": "user", "content": SECRET_PROMPT}]
    whole = sdk.chat.completions.with_raw_response.create(
        model="chat", messages=secret, max_tokens=3
    )
    stream = sdk.completions.with_raw_response.create(
        model="chat", prompt=SECRET_PROMPT, max_tokens=2, stream=True
    )
    list(stream.parse())
    missing = httpx.post(
        gw.v1 + "/chat/completions",
        headers={"authorization": f"Bearer {world.key}"},
        json={"model": "nope", "messages": secret},
    )
    anonymous = httpx.post(gw.v1 + "/chat/completions", json={"model": "chat", "messages": secret})
    ids = [r.headers["x-request-id"] for r in (whole, stream, missing, anonymous)]
    assert wait_until(lambda: len(access_records(caplog)) >= 4, timeout=5)

    records = {r["request_id"]: r for r in access_records(caplog)}
    assert set(ids) <= set(records)
    first = records[ids[0]]
    assert first["project"] == PROJECT and first["deployment"] == "chat"
    assert (first["status"], first["target"], first["endpoint"]) == ("ok", "local", "chat")
    usage = whole.parse().usage
    assert usage is not None
    assert first["completion_tokens"] == usage.completion_tokens == 3
    assert first["prompt_tokens"] == usage.prompt_tokens
    assert first["latency_ms"] >= first["upstream_ms"] > 0
    assert "via key gk_" in first["principal"]
    assert records[ids[1]]["endpoint"] == "completions"
    assert records[ids[1]]["completion_tokens"] == 2
    assert (records[ids[2]]["status"], records[ids[2]]["error"]) == (404, "not_found")
    assert (records[ids[3]]["status"], records[ids[3]]["error"]) == (401, "invalid_api_key")
    assert not [r for r in access_records(caplog) if "request" in r]
    for record in caplog.records:  # nothing the gateway logs carries the prompt
        if record.name.startswith(("genai", "uvicorn")):
            assert "PURPLE-ELEPHANT" not in record.getMessage()


def test_the_access_log_keeps_prompts_when_the_project_asks(
    world, gateway_server, settings, caplog, wait_until
):
    caplog.set_level(logging.INFO, logger="genai.gateway.access")
    gw = gateway_server(settings)
    secret: list[ChatCompletionMessageParam] = [{"role": "user", "content": SECRET_PROMPT}]
    logged = client(gw, world.keys[LOGGED]).chat.completions.with_raw_response.create(
        model="chat", messages=secret, max_tokens=2
    )
    plain = client(gw, world.key).chat.completions.with_raw_response.create(
        model="chat", messages=secret, max_tokens=2
    )
    assert wait_until(lambda: len(access_records(caplog)) >= 2, timeout=5)
    records = {r["request_id"]: r for r in access_records(caplog)}
    assert records[logged.headers["x-request-id"]]["request"] == {"messages": secret}
    assert "request" not in records[plain.headers["x-request-id"]]


# ------------------------------------------------------------------ OpenTelemetry


@pytest.fixture(scope="module")
def spans() -> Iterator[Any]:
    """An in-memory span exporter on the process's SDK tracer provider (shut down after
    this module: the provider is the process's for good, and later tests in the same
    worker must not pile their spans up in it)."""
    sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
    from opentelemetry import trace
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider = trace.get_tracer_provider()
    if not isinstance(provider, sdk_trace.TracerProvider):
        provider = sdk_trace.TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()  # it keeps no more spans
    exporter.clear()


class Dlp:
    name = "dlp"

    async def before(self, request: GatewayRequest) -> None:
        if "PURPLE" in json.dumps(request.body):
            raise DlpBlocked("the request contains a locker code")


def spans_of(exporter: Any, rid: str) -> list[Any]:
    return [
        s
        for s in exporter.get_finished_spans()
        if (s.attributes or {}).get("genai.request_id") == rid
    ]


def test_requests_make_spans_when_tracing_is_on(
    world, gateway_server, settings, spans, monkeypatch
):
    from opentelemetry.trace import StatusCode

    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    gw = gateway_server(settings, stages=Stages(request=[Dlp()]))
    sdk = client(gw, world.key)
    ask: dict[str, Any] = {
        "model": "chat",
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 2,
    }

    untraced = sdk.chat.completions.with_raw_response.create(**ask).headers["x-request-id"]
    assert spans_of(spans, untraced) == []  # off unless GENAI_OTEL (or an OTLP endpoint) is set

    monkeypatch.setenv("GENAI_OTEL", "1")
    whole = sdk.chat.completions.with_raw_response.create(**ask).headers["x-request-id"]
    stream = sdk.chat.completions.with_raw_response.create(**ask, stream=True)
    list(stream.parse())
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": SECRET_PROMPT}]
        )
    refused = caught.value.response.headers["x-request-id"]

    (span,) = spans_of(spans, whole)
    assert span.name == "gateway.request"
    assert span.attributes["genai.project"] == PROJECT
    assert span.attributes["genai.deployment"] == "chat"
    assert span.status.status_code != StatusCode.ERROR
    assert span.end_time >= span.start_time
    assert len(spans_of(spans, stream.headers["x-request-id"])) == 1
    (blocked,) = spans_of(spans, refused)
    assert blocked.status.status_code == StatusCode.ERROR
    (event,) = [e for e in blocked.events if e.name == "exception"]
    assert event.attributes["exception.type"].endswith("DlpBlocked")
    assert "PURPLE" not in json.dumps(dict(blocked.attributes))
