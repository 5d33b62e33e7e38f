"""``genai.testing.FakeOpenAIServer``: what users' tests rely on. Served as a context manager
on 127.0.0.1, it answers like vLLM's OpenAI server; its modes misbehave on demand; it
records what it was sent. (The ``openai`` backend's tests exercise every route and mode.)"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from genai.testing import FakeOpenAIServer, running_server

pytestmark = pytest.mark.anyio

CHAT = {"model": "fake-base", "messages": [{"role": "user", "content": "one two three"}]}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeOpenAIServer, httpx.AsyncClient]]:
    """The fake's ASGI app called in process (no socket)."""
    server = FakeOpenAIServer(adapters={"support": "/adapters/support"}, api_key="sk-1")
    transport = httpx.ASGITransport(app=server.app)
    headers = {"Authorization": "Bearer sk-1"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://fake", headers=headers
    ) as client:
        yield server, client


def test_as_a_context_manager_it_serves_on_a_free_loopback_port() -> None:
    with FakeOpenAIServer(base_model="tiny", reply="hello there") as fake:
        assert fake.url.startswith("http://127.0.0.1:")
        models = httpx.get(fake.url + "/v1/models", timeout=10).json()
        assert [m["id"] for m in models["data"]] == ["tiny"]
        body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}]}
        answer = httpx.post(fake.url + "/v1/chat/completions", json=body, timeout=10).json()
        assert answer["choices"][0]["message"]["content"] == "hello there"
        assert fake.calls() == 1 and fake.last("/v1/chat/completions") == body
        url = fake.url
        with pytest.raises(RuntimeError, match="served already"):
            fake.__enter__()
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/v1/models", timeout=2)


def test_running_server_serves_any_asgi_app() -> None:
    fake = FakeOpenAIServer()
    with running_server(fake.app) as url:
        assert httpx.get(url + "/v1/models", timeout=10).status_code == 200


async def test_models_list_the_base_and_its_adapters(
    fake: tuple[FakeOpenAIServer, httpx.AsyncClient],
) -> None:
    _, client = fake
    data = (await client.get("/v1/models")).json()["data"]
    assert [(m["id"], m["parent"]) for m in data] == [
        ("fake-base", None),
        ("support", "fake-base"),
    ]
    assert data[0]["max_model_len"] == 64


async def test_a_chat_answer_counts_words_as_tokens(
    fake: tuple[FakeOpenAIServer, httpx.AsyncClient],
) -> None:
    server, client = fake
    answer = (await client.post("/v1/chat/completions", json=CHAT)).json()
    assert answer["choices"][0]["message"]["content"] == server.reply
    assert answer["usage"] == {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}
    adapter = (await client.post("/v1/chat/completions", json={**CHAT, "model": "support"})).json()
    assert adapter["choices"][0]["message"]["content"] == f"[support] {server.reply}"


async def test_a_stream_is_server_sent_events_with_usage_and_done(
    fake: tuple[FakeOpenAIServer, httpx.AsyncClient],
) -> None:
    _, client = fake
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    response = await client.post("/v1/chat/completions", json=body)
    events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "the answer is forty two"
    assert chunks[-1]["usage"]["completion_tokens"] == 5


async def test_modes_misbehave_for_the_next_requests_only(
    fake: tuple[FakeOpenAIServer, httpx.AsyncClient],
) -> None:
    server, client = fake
    server.mode, server.failures_left = "ratelimit", 1
    refused = await client.post("/v1/chat/completions", json=CHAT)
    assert (refused.status_code, refused.headers["retry-after"]) == (429, server.retry_after)
    assert (await client.post("/v1/chat/completions", json=CHAT)).status_code == 200
    server.failures_left = None
    server.mode = "error500"
    failed = await client.post("/v1/chat/completions", json=CHAT)
    assert failed.status_code == 500 and failed.json()["error"]["code"] == 500
    assert server.calls() == 3


async def test_a_wrong_key_is_refused_and_recorded(
    fake: tuple[FakeOpenAIServer, httpx.AsyncClient],
) -> None:
    server, client = fake
    refused = await client.post(
        "/v1/chat/completions", json=CHAT, headers={"Authorization": "Bearer nope"}
    )
    assert refused.status_code == 401
    assert server.requests[-1].headers["authorization"] == "Bearer nope"


async def test_adapters_load_and_unload_like_vllm(
    fake: tuple[FakeOpenAIServer, httpx.AsyncClient],
) -> None:
    server, client = fake
    loaded = await client.post(
        "/v1/load_lora_adapter", json={"lora_name": "x", "lora_path": "/adapters/x"}
    )
    assert loaded.status_code == 200 and "added successfully" in loaded.text
    assert server.adapters["x"] == "/adapters/x"
    again = await client.post(
        "/v1/load_lora_adapter", json={"lora_name": "x", "lora_path": "/adapters/x"}
    )
    assert again.status_code == 400 and "already been loaded" in again.json()["error"]["message"]
    assert (await client.post("/v1/unload_lora_adapter", json={"lora_name": "x"})).is_success
    gone = await client.post("/v1/unload_lora_adapter", json={"lora_name": "x"})
    assert gone.status_code == 404


async def test_tokenize_counts_words(fake: tuple[FakeOpenAIServer, httpx.AsyncClient]) -> None:
    server, client = fake
    counted = (await client.post("/tokenize", json={"prompt": "a b c d"})).json()
    assert (counted["count"], counted["max_model_len"]) == (4, 64)
    server.tokenize = False
    assert (await client.post("/tokenize", json={"prompt": "a"})).status_code == 404
