"""The model server behind ``genai serve`` as OpenAI's own Python client sees it: a tiny
real Llama model with LoRA adapters, the real app under uvicorn, real HTTP on 127.0.0.1.

Greedy requests (temperature 0) are deterministic, so expected texts are derived from the
server's own answers: a stop sequence is cut out of a full answer, a stream must add up to
the non-streamed text, and so on.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from _clocks import ManualClock
from openai.types.chat import ChatCompletionMessageParam

BASE = "tiny-llama"
PROMPT = "How do I open an account?"
CHAT: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Where is my invoice?"}]


@pytest.fixture(scope="module")
def serve_clock() -> ManualClock:
    """The clock the server's latency metrics count in: it moves only when a test says."""
    return ManualClock()


@pytest.fixture(scope="module")
def srv(tiny, run_server, serve_clock: ManualClock) -> Iterator[Any]:
    with run_server(tiny.model, adapters=tiny.adapters, clock=serve_clock) as server:
        yield server


@pytest.fixture(scope="module")
def client(srv) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.v1, api_key="unused", max_retries=0, timeout=30)


def complete(
    client: openai.OpenAI, prompt: str | list[str] = PROMPT, model: str = BASE, **kw: Any
) -> Any:
    kw.setdefault("temperature", 0)
    return client.completions.create(model=model, prompt=prompt, **kw)


def sse(response: httpx.Response) -> list[Any]:
    """The events of a raw SSE body, checking OpenAI's framing (``[DONE]`` stays a str)."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    body = response.text
    assert body.endswith("data: [DONE]\n\n")
    blocks = body.split("\n\n")
    assert blocks[-1] == ""
    events: list[Any] = []
    for block in blocks[:-1]:
        assert block.startswith("data: ") and "\n" not in block, block
        payload = block.removeprefix("data: ")
        events.append(payload if payload == "[DONE]" else json.loads(payload))
    assert events.count("[DONE]") == 1
    return events


def printable_window(text: str, start: int, size: int) -> str | None:
    piece = text[start : start + size]
    ok = len(piece) == size and all(c.isprintable() and c != "\ufffd" for c in piece)
    return piece if ok else None


# ------------------------------------------------------------------ basics


def test_health_and_models(srv, client, tiny) -> None:
    health = httpx.get(srv.url + "/health")
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    models = {m.id: m for m in client.models.list().data}
    assert list(models) == [BASE, "a1", "a2", "a3"]
    base = models[BASE].model_dump()
    assert base["parent"] is None and base["max_model_len"] == 2048 and base["object"] == "model"
    for name in ("a1", "a2", "a3"):
        info = models[name].model_dump()
        assert info["parent"] == BASE and info["max_model_len"] == 2048
        assert info["root"] == str(tiny.adapters[name])


def test_chat_non_stream(client) -> None:
    reply = client.chat.completions.create(model=BASE, messages=CHAT, max_tokens=12, temperature=0)
    assert (
        reply.object == "chat.completion"
        and reply.model == BASE
        and reply.id.startswith("chatcmpl-")
    )
    (choice,) = reply.choices
    assert choice.index == 0 and choice.message.role == "assistant"
    assert choice.finish_reason == "length" and choice.message.content
    assert reply.usage.completion_tokens == 12
    assert reply.usage.prompt_tokens > 8  # the chat template's tokens count too
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + 12
    again = client.chat.completions.create(model=BASE, messages=CHAT, max_tokens=12, temperature=0)
    assert again.choices[0].message.content == choice.message.content  # greedy is deterministic


def test_max_tokens_gives_length_with_that_many_tokens(client) -> None:
    for max_tokens in (1, 7, 30):
        reply = complete(client, max_tokens=max_tokens)
        assert reply.choices[0].finish_reason == "length"
        assert reply.usage.completion_tokens == max_tokens
    longer, shorter = complete(client, max_tokens=30), complete(client, max_tokens=7)
    assert longer.choices[0].text.startswith(shorter.choices[0].text)
    assert len(longer.choices[0].text) > len(shorter.choices[0].text)


def test_completions_default_to_16_tokens(client) -> None:
    reply = client.completions.create(model=BASE, prompt=PROMPT, temperature=0)
    assert reply.usage.completion_tokens == 16 and reply.choices[0].finish_reason == "length"


def test_stream_adds_up_to_the_non_streamed_answer(client) -> None:
    whole = client.chat.completions.create(model="a2", messages=CHAT, max_tokens=20, temperature=0)
    chunks = list(
        client.chat.completions.create(
            model="a2", messages=CHAT, max_tokens=20, temperature=0, stream=True
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == "length"
    assert {c.model for c in chunks} == {"a2"} and len({c.id for c in chunks}) == 1

    plain = complete(client, model="a3", max_tokens=15)
    pieces = list(complete(client, model="a3", max_tokens=15, stream=True))
    assert "".join(p.choices[0].text for p in pieces) == plain.choices[0].text
    assert pieces[-1].choices[0].finish_reason == "length"
    assert sum(1 for p in pieces if p.choices[0].text) > 3  # token by token, not one lump


def test_chat_sse_framing(srv) -> None:
    body = {"model": BASE, "messages": CHAT, "max_tokens": 6, "temperature": 0, "stream": True}
    events = sse(httpx.post(srv.v1 + "/chat/completions", json=body, timeout=30))
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    first, *middle, last = chunks
    assert first["object"] == "chat.completion.chunk" and first["model"] == BASE
    assert first["choices"] == [
        {
            "index": 0,
            "delta": {"role": "assistant", "content": ""},
            "logprobs": None,
            "finish_reason": None,
        }
    ]
    assert middle and all(set(c["choices"][0]["delta"]) == {"content"} for c in middle)
    assert all(c["choices"][0]["finish_reason"] is None for c in middle)
    assert last["choices"] == [
        {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "length"}
    ]
    assert len({c["id"] for c in chunks}) == 1 and all("usage" not in c for c in chunks)

    with_usage = sse(
        httpx.post(
            srv.v1 + "/chat/completions",
            timeout=30,
            json={**body, "stream_options": {"include_usage": True}},
        )
    )
    *chunks, usage, done = with_usage
    assert done == "[DONE]"
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 6
    assert usage["usage"]["total_tokens"] == usage["usage"]["prompt_tokens"] + 6
    assert all(c["usage"] is None for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == "".join(c["choices"][0]["delta"]["content"] for c in middle)


def test_completion_sse_framing(srv) -> None:
    body = {
        "model": "a1",
        "prompt": PROMPT,
        "max_tokens": 5,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    *chunks, usage, done = sse(httpx.post(srv.v1 + "/completions", json=body, timeout=30))
    assert done == "[DONE]" and usage["choices"] == []
    assert usage["usage"]["completion_tokens"] == 5
    assert all(c["object"] == "text_completion" and c["usage"] is None for c in chunks)
    *pieces, last = chunks
    assert all(p["choices"][0]["finish_reason"] is None and p["choices"][0]["text"] for p in pieces)
    assert last["choices"] == [
        {"index": 0, "text": "", "logprobs": None, "finish_reason": "length"}
    ]


# ------------------------------------------------------------------ choices and prompts


def test_n_choices(client) -> None:
    one = client.chat.completions.create(model=BASE, messages=CHAT, max_tokens=8, seed=5)
    three = client.chat.completions.create(model=BASE, messages=CHAT, max_tokens=8, n=3, seed=5)
    assert [c.index for c in three.choices] == [0, 1, 2]
    texts = [c.message.content for c in three.choices]
    assert len(set(texts)) == 3  # each choice samples on its own
    assert texts[0] == one.choices[0].message.content  # choice i uses seed + i
    assert all(c.finish_reason == "length" for c in three.choices)
    assert three.usage.completion_tokens == 24
    assert three.usage.prompt_tokens == one.usage.prompt_tokens  # the prompt counts once

    greedy = client.chat.completions.create(
        model=BASE, messages=CHAT, max_tokens=8, n=2, temperature=0
    )
    assert greedy.choices[0].message.content == greedy.choices[1].message.content


def test_completions_with_a_list_of_prompts(client) -> None:
    prompts = ["Hello, world!", "The quick brown fox jumps over the lazy dog;"]
    singles = [complete(client, p, max_tokens=6) for p in prompts]
    both = complete(client, prompts, max_tokens=6, n=2)
    assert [c.index for c in both.choices] == [0, 1, 2, 3]
    expected = [s.choices[0].text for s in singles for _ in range(2)]
    assert [c.text for c in both.choices] == expected
    assert both.usage.prompt_tokens == sum(s.usage.prompt_tokens for s in singles)
    assert both.usage.completion_tokens == 24


def test_echo(client) -> None:
    plain = complete(client, max_tokens=5).choices[0].text
    echoed = complete(client, max_tokens=5, echo=True)
    assert echoed.choices[0].text == PROMPT + plain
    assert echoed.usage.completion_tokens == 5
    pieces = list(complete(client, max_tokens=5, echo=True, stream=True))
    assert pieces[0].choices[0].text == PROMPT
    assert "".join(p.choices[0].text for p in pieces) == PROMPT + plain


# ------------------------------------------------------------------ stop sequences


def test_stop_sequence_cuts_the_output_before_it(client) -> None:
    full = complete(client, max_tokens=40).choices[0].text
    stop = next(s for i in range(8, len(full)) if (s := printable_window(full, i, 3)))
    expected = full[: full.index(stop)]
    reply = complete(client, max_tokens=40, stop=[stop, "never-seen-stop"])
    assert reply.choices[0].text == expected
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage.completion_tokens < 40
    chat = client.chat.completions.create(model=BASE, messages=CHAT, max_tokens=40, temperature=0)
    text = chat.choices[0].message.content
    stop = next(s for i in range(5, len(text)) if (s := printable_window(text, i, 2)))
    cut = client.chat.completions.create(
        model=BASE, messages=CHAT, max_tokens=40, temperature=0, stop=stop
    )
    assert cut.choices[0].message.content == text[: text.index(stop)]
    assert cut.choices[0].finish_reason == "stop"


def test_stop_sequence_split_across_tokens_in_a_stream(client) -> None:
    deltas = [p.choices[0].text for p in complete(client, model="a1", max_tokens=40, stream=True)]
    deltas = [d for d in deltas if d]
    full = "".join(deltas)
    # a stop made of the end of one token and the start of the next, first seen there
    stop, boundary = None, 0
    for left, right in itertools.pairwise(deltas):
        boundary += len(left)
        candidate = left[-2:] + right[:2]
        if (
            printable_window(candidate, 0, len(candidate))
            and len(left) >= 2
            and len(right) >= 2
            and full.index(candidate) == boundary - 2
        ):
            stop = candidate
            break
    assert stop is not None, deltas
    pieces = list(complete(client, model="a1", max_tokens=40, stream=True, stop=[stop]))
    text = "".join(p.choices[0].text for p in pieces)
    assert text == full[: boundary - 2]
    assert pieces[-1].choices[0].finish_reason == "stop"


# ------------------------------------------------------------------ sampling


def test_seeded_sampling_is_reproducible_and_seeds_differ(client) -> None:
    def sample(seed: int | None, model: str = BASE) -> str:
        reply = complete(client, model=model, max_tokens=20, temperature=1.0, seed=seed)
        return str(reply.choices[0].text)

    assert sample(7) == sample(7)
    assert sample(7) != sample(8)
    assert sample(7, "a1") == sample(7, "a1") != sample(7)
    assert len({sample(None) for _ in range(3)}) == 3  # unseeded: fresh randomness
    greedy = {complete(client, max_tokens=20, temperature=0).choices[0].text for _ in range(3)}
    assert len(greedy) == 1


def test_top_p_near_zero_is_greedy(client) -> None:
    greedy = complete(client, max_tokens=15, temperature=0).choices[0].text
    nucleus = complete(client, max_tokens=15, temperature=1.0, top_p=1e-9, seed=3).choices[0].text
    assert nucleus == greedy


def test_async_client_chat_and_stream(srv) -> None:
    async def main() -> tuple[str, str]:
        async with openai.AsyncOpenAI(base_url=srv.v1, api_key="unused", max_retries=0) as aio:
            whole = await aio.chat.completions.create(
                model="a3", messages=CHAT, max_tokens=10, temperature=0
            )
            stream = await aio.chat.completions.create(
                model="a3", messages=CHAT, max_tokens=10, temperature=0, stream=True
            )
            parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
            return str(whole.choices[0].message.content), "".join(parts)

    whole, streamed = asyncio.run(main())
    assert whole and whole == streamed


# ------------------------------------------------------------------ metrics


def test_metrics_count_requests_tokens_and_batches(srv, client) -> None:
    text = httpx.get(srv.url + "/metrics").text
    assert "# TYPE genai_serve_requests_total counter" in text
    assert "# TYPE genai_serve_batch_rows histogram" in text
    before = {
        "req": srv.metric(
            "genai_serve_requests_total", endpoint="completions", model="a2", status="200"
        ),
        "prompt": srv.metric("genai_serve_prompt_tokens_total", model="a2"),
        "gen": srv.metric("genai_serve_generation_tokens_total", model="a2"),
        "steps": srv.metric("genai_serve_batch_rows_count"),
        "stream": srv.metric(
            "genai_serve_requests_total", endpoint="chat", model="a2", status="200"
        ),
        "ttft": srv.metric("genai_serve_time_to_first_token_seconds_count"),
    }
    reply = complete(client, model="a2", max_tokens=9)
    list(
        client.chat.completions.create(
            model="a2", messages=CHAT, max_tokens=4, temperature=0, stream=True
        )
    )
    after_req = srv.metric(
        "genai_serve_requests_total", endpoint="completions", model="a2", status="200"
    )
    assert after_req == before["req"] + 1
    assert (
        srv.metric("genai_serve_requests_total", endpoint="chat", model="a2", status="200")
        == before["stream"] + 1
    )
    prompt = srv.metric("genai_serve_prompt_tokens_total", model="a2") - before["prompt"]
    assert prompt > reply.usage.prompt_tokens  # the chat's prompt tokens count too
    assert srv.metric("genai_serve_generation_tokens_total", model="a2") == before["gen"] + 9 + 4
    assert srv.metric("genai_serve_batch_rows_count") >= before["steps"] + 9 + 4
    assert srv.metric("genai_serve_time_to_first_token_seconds_count") == before["ttft"] + 1
    assert srv.metric("genai_serve_adapters_loaded") == 3
    assert srv.metric("genai_serve_requests_in_flight") == 0


def test_in_flight_and_latency_cover_the_whole_stream(
    srv, client, wait_until, serve_clock: ManualClock
) -> None:
    count = srv.metric("genai_serve_request_seconds_count", endpoint="completions")
    total = srv.metric("genai_serve_request_seconds_sum", endpoint="completions")
    first_token = srv.metric("genai_serve_time_to_first_token_seconds_sum")
    stream = complete(client, prompt="Hello, world!", max_tokens=400, stream=True)
    chunks = iter(stream)
    next(chunks)
    assert srv.metric("genai_serve_requests_in_flight") == 1  # being answered until the end
    serve_clock.advance(100)  # between the first byte and the last
    assert sum(1 for _ in chunks) > 1
    latency = "genai_serve_request_seconds_count"
    assert wait_until(lambda: srv.metric(latency, endpoint="completions") == count + 1)
    assert srv.metric("genai_serve_requests_in_flight") == 0
    seconds = srv.metric("genai_serve_request_seconds_sum", endpoint="completions") - total
    assert seconds == pytest.approx(100)  # time to the last byte, not to the first
    assert srv.metric("genai_serve_time_to_first_token_seconds_sum") == first_token
