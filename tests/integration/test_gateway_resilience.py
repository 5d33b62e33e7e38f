"""The gateway against faulty upstreams: retries (with backoff, honouring Retry-After),
no retry of the caller's mistakes, fallbacks, circuit breakers, every target down, and
streams that break or never start.

The upstreams are fake vLLM servers on loopback whose failure switches are flipped per
test (``mode``, ``failures_left``, ``hang_s``); every client call is bounded by a timeout,
so a hang fails the test instead of stalling it.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest
from _clocks import ManualClock
from _gateway_harness import GatewayProject, LiveGateway
from _servers import closed_port_url

import genai
from genai.gateway import Circuits, GatewayOptions
from genai.store import schema as t
from genai.testing import FakeOpenAIServer, running_server

CHAT: dict[str, Any] = {
    "model": "chat",
    "messages": [{"role": "user", "content": "tell me something"}],
}
OPTIONS = GatewayOptions(ledger_interval_s=0.02)


# SQLite only: failure handling does not depend on the database.
pytestmark = pytest.mark.sqlite_only


# ------------------------------------------------------------------ helpers


@pytest.fixture
def fake() -> Iterator[Callable[..., FakeOpenAIServer]]:
    """``fake(reply)`` starts a fake vLLM upstream (``.url`` is its /v1 base)."""
    with contextlib.ExitStack() as stack:

        def start(reply: str = "all good here", **kwargs: Any) -> FakeOpenAIServer:
            server = FakeOpenAIServer(reply=reply, **kwargs)
            server.url = stack.enter_context(running_server(server.app)) + "/v1"
            return server

        yield start


@pytest.fixture
def waits() -> ManualClock:
    """The gateway's backoff sleeps on this clock: each wait is recorded (``slept``) and
    passes at once."""
    return ManualClock()


@pytest.fixture
def gateway(
    project: GatewayProject,
    settings: genai.Settings,
    gateway_server: Callable[..., LiveGateway],
    clock: ManualClock,
    waits: ManualClock,
) -> Callable[[dict[str, Any]], LiveGateway]:
    """``gateway(spec)``: deploy ``chat`` with the spec and start a gateway whose circuits
    count time on ``clock`` and whose retries wait on ``waits``."""

    def start(spec: dict[str, Any]) -> LiveGateway:
        project.deploy(spec)
        return gateway_server(
            settings, options=OPTIONS, circuits=Circuits(clock=clock), sleep=waits.sleep
        )

    return start


def target(name: str, upstream: FakeOpenAIServer | str, **extra: Any) -> dict[str, Any]:
    url = upstream if isinstance(upstream, str) else upstream.url
    return {"name": name, "url": url, "model": "fake-base", **extra}


def spec(*targets: dict[str, Any], fallbacks: Any = (), **extra: Any) -> dict[str, Any]:
    return {
        "targets": list(targets),
        "fallbacks": list(fallbacks),
        "retries": 0,
        "backoff_s": 0.01,
        **extra,
    }


def client(gw: LiveGateway, key: str, timeout: float = 10.0) -> httpx.Client:
    return httpx.Client(base_url=gw.v1, headers={"authorization": f"Bearer {key}"}, timeout=timeout)


def chat(gw: LiveGateway, key: str, body: dict[str, Any] | None = None) -> httpx.Response:
    with client(gw, key) as c:
        return c.post("/chat/completions", json=body or CHAT)


def stream_events(gw: LiveGateway, key: str, timeout: float = 5.0) -> tuple[int, list[Any]]:
    """The status and the decoded ``data:`` events of a streamed answer ([DONE] as is)."""
    events: list[Any] = []
    with (
        client(gw, key, timeout) as c,
        c.stream("POST", "/chat/completions", json={**CHAT, "stream": True}) as response,
    ):
        if response.status_code != 200:
            response.read()
            return response.status_code, [response.json()]
        for line in response.iter_lines():
            if line.startswith("data: "):
                data = line[6:]
                events.append(data if data == "[DONE]" else json.loads(data))
    return 200, events


def text_of(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    return str(response.json()["choices"][0]["message"]["content"])


def errors(gw: LiveGateway, target_name: str, reason: str) -> float:
    value = gw.gateway.metrics.registry.get_sample_value(
        "genai_gateway_upstream_errors_total", {"target": target_name, "reason": reason}
    )
    return value or 0.0


def ledger(gw: LiveGateway, project: GatewayProject) -> list[t.UsageRecord]:
    assert gw.gateway.ledger.flush()
    return project.rows()


def circuit_of(gw: LiveGateway, upstream: FakeOpenAIServer) -> str:
    return gw.gateway.circuits.states().get(f"{upstream.url}|fake-base", "none")


# ------------------------------------------------------------------ retries


@pytest.mark.parametrize(
    ("mode", "stream", "reason"),
    [
        ("error500", False, "http_500"),
        ("ratelimit", False, "http_429"),
        ("hang", False, "timeout"),
        ("error500", True, "http_500"),
        ("hang", True, "timeout"),
    ],
)
def test_retryable_failures_are_retried_until_the_target_answers(
    mode: str,
    stream: bool,
    reason: str,
    project: GatewayProject,
    fake: Callable[..., FakeOpenAIServer],
    gateway: Callable[[dict[str, Any]], LiveGateway],
) -> None:
    upstream = fake()
    upstream.mode, upstream.failures_left, upstream.hang_s = mode, 2, 1.0
    upstream.retry_after = "0"
    gw = gateway(spec(target("main", upstream, timeout_s=0.25), retries=2))
    if stream:
        status, events = stream_events(gw, project.key)
        assert status == 200 and events[-1] == "[DONE]"
        said = "".join(c["delta"].get("content") or "" for e in events[:-1] for c in e["choices"])
    else:
        said = text_of(chat(gw, project.key))
    assert said == "all good here"
    assert upstream.calls() == 3
    assert errors(gw, "main", reason) == 2
    rows = ledger(gw, project)
    assert [(r.status, r.target) for r in rows] == [("ok", "main")]


def test_retries_give_up_after_the_limit_backing_off_exponentially(
    project: GatewayProject,
    fake: Callable[..., FakeOpenAIServer],
    gateway: Callable[[dict[str, Any]], LiveGateway],
    waits: ManualClock,
) -> None:
    upstream = fake()
    upstream.mode = "error500"
    gw = gateway(spec(target("main", upstream), retries=3, backoff_s=0.1))
    answer = chat(gw, project.key)
    assert answer.status_code == 502
    error = answer.json()["error"]
    assert "no target answered" in error["message"] and "HTTP 500" in error["message"]
    assert upstream.calls() == 4  # the first try and 3 retries, then no more
    # a wait before each retry: backoff_s * 2**attempt, jittered by ±50%
    assert len(waits.slept) == 3
    for attempt, waited in enumerate(waits.slept):
        assert 0.05 * 2**attempt <= waited < 0.15 * 2**attempt
    assert errors(gw, "main", "http_500") == 4
    assert [r.status for r in ledger(gw, project)] == ["upstream_error"]


def test_retry_after_of_the_upstream_is_honoured(
    project: GatewayProject,
    fake: Callable[..., FakeOpenAIServer],
    gateway: Callable[[dict[str, Any]], LiveGateway],
    waits: ManualClock,
) -> None:
    upstream = fake()
    upstream.mode, upstream.failures_left, upstream.retry_after = "ratelimit", 1, "1"
    gw = gateway(spec(target("main", upstream), retries=1, backoff_s=0.001))
    assert text_of(chat(gw, project.key)) == "all good here"
    assert upstream.calls() == 2 and errors(gw, "main", "http_429") == 1
    assert waits.slept == [1.0]  # the upstream's 1 s, not the 1 ms backoff


def test_a_long_retry_after_is_not_waited_for_in_the_request_but_passed_on(
    project: GatewayProject,
    fake: Callable[..., FakeOpenAIServer],
    gateway: Callable[[dict[str, Any]], LiveGateway],
    waits: ManualClock,
) -> None:
    upstream = fake()
    upstream.mode, upstream.retry_after = "ratelimit", "30"
    gw = gateway(spec(target("main", upstream), retries=1, backoff_s=0.01))
    answer = chat(gw, project.key)
    assert upstream.calls() == 2  # retried once, then given up
    # its own backoff instead of 30 s (waiting 30 s would time the client out)
    (waited,) = waits.slept
    assert 0.005 <= waited < 0.015
    assert answer.status_code == 502 and answer.headers["retry-after"] == "30"


@pytest.mark.parametrize("stream", [False, True])
def test_the_callers_mistake_is_neither_retried_nor_sent_to_a_fallback(
    stream: bool,
    project: GatewayProject,
    fake: Callable[..., FakeOpenAIServer],
    gateway: Callable[[dict[str, Any]], LiveGateway],
) -> None:
    main, backup = fake(), fake("from the backup")
    gw = gateway(
        spec(
            target("main", main),
            fallbacks=[target("backup", backup)],
            retries=3,
            circuit={"failures": 1, "reset_s": 30},
        )
    )
    too_long = {**CHAT, "stream": stream, "messages": [{"role": "user", "content": "w " * 70}]}
    answer = chat(gw, project.key, too_long)
    assert answer.status_code == 400
    assert "maximum context length is 64" in answer.json()["error"]["message"]
    assert (main.calls(), backup.calls()) == (1, 0)
    assert circuit_of(gw, main) == "closed"  # the upstream is fine: the request was not
    assert [r.status for r in ledger(gw, project)] == ["invalid_request"]


# ------------------------------------------------------------------ fallbacks


@pytest.mark.parametrize(
    ("broken", "reason"), [("error500", "http_500"), ("refused", "connection")]
)
def test_a_fallback_answers_once_the_chosen_target_used_up_its_retries(
    broken: str,
    reason: str,
    project: GatewayProject,
    fake: Callable[..., FakeOpenAIServer],
    gateway: Callable[[dict[str, Any]], LiveGateway],
) -> None:
    main, backup = fake(), fake("from the backup")
    main.mode = "error500"
    first = target("main", closed_port_url() if broken == "refused" else main)
    gw = gateway(spec(first, fallbacks=[target("backup", backup)], retries=2))
    assert text_of(chat(gw, project.key)) == "from the backup"
    assert errors(gw, "main", reason) == 3
    assert main.calls() == (3 if broken == "error500" else 0)
    assert backup.calls() == 1
    rows = ledger(gw, project)
    assert [(r.status, r.target) for r in rows] == [("ok", "backup")]


# ------------------------------------------------------------------ circuit breaker


def test_the_circuit_opens_skips_the_target_then_half_opens_and_closes_on_success(
    project: GatewayProject,
    fake: Callable[..., FakeOpenAIServer],
    gateway: Callable[[dict[str, Any]], LiveGateway],
    clock: ManualClock,
) -> None:
    main, backup = fake("from main"), fake("from the backup")
    main.mode = "error500"
    gw = gateway(
        spec(
            target("main", main),
            fallbacks=[target("backup", backup)],
            circuit={"failures": 3, "reset_s": 30},
        )
    )
    with client(gw, project.key) as c:

        def ask() -> str:
            return text_of(c.post("/chat/completions", json=CHAT))

        for _ in range(3):
            assert ask() == "from the backup"
        assert main.calls() == 3 and circuit_of(gw, main) == "open"
        for _ in range(3):  # skipped while open: the backup answers, main is not called
            assert ask() == "from the backup"
        assert main.calls() == 3
        clock.advance(29.9)
        assert ask() == "from the backup" and main.calls() == 3  # still open

        main.mode = "ok"
        clock.advance(0.1)
        assert ask() == "from main"  # the trial
        assert main.calls() == 4 and circuit_of(gw, main) == "closed"
        for _ in range(3):
            assert ask() == "from main"
    assert (main.calls(), backup.calls()) == (7, 7)


def test_a_failed_trial_opens_the_circuit_again(
    project: GatewayProject,
    fake: Callable[..., FakeOpenAIServer],
    gateway: Callable[[dict[str, Any]], LiveGateway],
    clock: ManualClock,
) -> None:
    main, backup = fake("from main"), fake("from the backup")
    main.mode = "error500"
    gw = gateway(
        spec(
            target("main", main),
            fallbacks=[target("backup", backup)],
            retries=2,
            circuit={"failures": 2, "reset_s": 30},
        )
    )
    with client(gw, project.key) as c:

        def ask() -> str:
            return text_of(c.post("/chat/completions", json=CHAT))

        # two failures open it in the middle of the retries: the third try is not made
        assert ask() == "from the backup"
        assert main.calls() == 2 and circuit_of(gw, main) == "open"
        clock.advance(30)
        assert ask() == "from the backup"
        assert main.calls() == 3  # one trial, and no retry of it
        assert circuit_of(gw, main) == "open"
        clock.advance(29.9)
        assert ask() == "from the backup"
        assert main.calls() == 3  # open again for a whole reset_s from the failed trial
        clock.advance(0.1)
        assert ask() == "from the backup"
        assert main.calls() == 4  # the next trial


# ------------------------------------------------------------------ every target down


def test_every_target_failing_is_a_502_and_open_circuits_a_503_with_retry_after(
    project: GatewayProject,
    fake: Callable[..., FakeOpenAIServer],
    gateway: Callable[[dict[str, Any]], LiveGateway],
) -> None:
    main, backup = fake(), fake()
    main.mode = backup.mode = "error500"
    gw = gateway(
        spec(
            target("main", main),
            fallbacks=[target("backup", backup)],
            circuit={"failures": 1, "reset_s": 20},
        )
    )
    failed = chat(gw, project.key)
    assert failed.status_code == 502
    assert failed.json()["error"]["type"]  # an OpenAI-style error body
    assert (main.calls(), backup.calls()) == (1, 1)

    refused = chat(gw, project.key)
    assert refused.status_code == 503
    assert int(refused.headers["retry-after"]) == 20  # no time passed on the clock
    assert "circuit open" in refused.json()["error"]["message"]
    assert (main.calls(), backup.calls()) == (1, 1)  # neither was called

    status, events = stream_events(gw, project.key)
    assert status == 503 and "circuit open" in events[0]["error"]["message"]
    statuses = sorted(r.status for r in ledger(gw, project))
    assert statuses == ["upstream_error"] * 3


def test_rate_limited_targets_pass_their_retry_after_on(
    project: GatewayProject,
    fake: Callable[..., FakeOpenAIServer],
    gateway: Callable[[dict[str, Any]], LiveGateway],
) -> None:
    main, backup = fake(), fake()
    main.mode = backup.mode = "ratelimit"
    main.retry_after, backup.retry_after = "9", "7"
    gw = gateway(spec(target("main", main), fallbacks=[target("backup", backup)]))
    answer = chat(gw, project.key)
    assert answer.status_code == 502
    assert answer.headers["retry-after"] == "7"  # the soonest of the two


# ------------------------------------------------------------------ broken streams


@pytest.mark.parametrize("mode", ["drop", "eof", "error_event"])
def test_a_stream_broken_mid_way_ends_with_an_error_event(
    mode: str,
    project: GatewayProject,
    fake: Callable[..., FakeOpenAIServer],
    gateway: Callable[[dict[str, Any]], LiveGateway],
) -> None:
    upstream = fake("one two three four five six")
    upstream.mode = mode
    gw = gateway(spec(target("main", upstream), retries=2))
    status, events = stream_events(gw, project.key, timeout=5)
    assert status == 200
    pieces = [e for e in events if isinstance(e, dict) and "choices" in e]
    assert pieces, "the pieces before the break reach the client"
    failures = [e for e in events if isinstance(e, dict) and "error" in e]
    assert len(failures) == 1
    assert events.index(failures[0]) >= len(events) - 2  # the end (at most [DONE] after it)
    assert upstream.calls() == 1  # what was sent cannot be taken back: no retry
    assert [r.status for r in ledger(gw, project)] == ["upstream_error"]


def test_the_openai_sdk_sees_a_dropped_stream_as_an_error(
    project: GatewayProject,
    fake: Callable[..., FakeOpenAIServer],
    gateway: Callable[[dict[str, Any]], LiveGateway],
) -> None:
    upstream = fake("one two three four five six")
    upstream.mode = "drop"
    gw = gateway(spec(target("main", upstream)))
    sdk = openai.OpenAI(base_url=gw.v1, api_key=project.key, timeout=5, max_retries=0)
    stream = sdk.chat.completions.create(model="chat", messages=CHAT["messages"], stream=True)
    received: list[str] = []
    with pytest.raises(openai.APIError, match="dropped the stream"):
        for chunk in stream:
            received.extend(c.delta.content or "" for c in chunk.choices)
    assert "".join(received) == "one two"


def test_a_stream_whose_upstream_never_answers_times_out_per_target(
    project: GatewayProject,
    fake: Callable[..., FakeOpenAIServer],
    gateway: Callable[[dict[str, Any]], LiveGateway],
) -> None:
    upstream = fake()
    # not even the response headers: it would answer (200) were there no timeout
    upstream.mode, upstream.hang_s = "hang", 6.0
    gw = gateway(spec(target("main", upstream, timeout_s=1.0)))
    status, events = stream_events(gw, project.key, timeout=5.5)
    assert status == 502
    assert "timed out after 1 s" in events[0]["error"]["message"]
    assert [r.status for r in ledger(gw, project)] == ["upstream_error"]


def test_a_stream_that_never_sends_its_first_byte_times_out_per_target(
    project: GatewayProject,
    fake: Callable[..., FakeOpenAIServer],
    gateway: Callable[[dict[str, Any]], LiveGateway],
) -> None:
    upstream = fake()
    # the headers, then silence: it would go on (200) were there no timeout
    upstream.mode, upstream.hang_s = "stall", 6.0
    gw = gateway(spec(target("main", upstream, timeout_s=1.0)))
    status, events = stream_events(gw, project.key, timeout=5.5)
    assert status == 502  # nothing was sent yet: an error status, not a broken stream
    assert len(events) == 1 and "stopped sending for 1 s" in events[0]["error"]["message"]
    assert [r.status for r in ledger(gw, project)] == ["upstream_error"]


@pytest.mark.parametrize("mode", ["garbage", "not_sse", "stall", "error_event_first"])
def test_a_stream_whose_target_fails_before_its_first_event_falls_back(
    mode: str,
    project: GatewayProject,
    fake: Callable[..., FakeOpenAIServer],
    gateway: Callable[[dict[str, Any]], LiveGateway],
) -> None:
    broken, backup = fake("never seen"), fake("the backup answers")
    broken.mode, broken.hang_s = mode, 2.0
    gw = gateway(spec(target("main", broken, timeout_s=0.3), fallbacks=[target("backup", backup)]))
    status, events = stream_events(gw, project.key)
    assert status == 200
    pieces = [e for e in events if isinstance(e, dict) and e.get("choices")]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in pieces)
    assert text == "the backup answers"
    assert not [e for e in events if isinstance(e, dict) and "error" in e]
    assert events[-1] == "[DONE]"
    assert (broken.calls(), backup.calls()) == (1, 1)
    (row,) = ledger(gw, project)
    assert (row.status, row.target) == ("ok", "backup")
