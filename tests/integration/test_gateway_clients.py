"""The gateway end to end with the clients people use: the official ``openai`` SDK (sync and
async), LangChain's ``ChatOpenAI`` and LlamaIndex's ``OpenAILike``, through a real gateway to
a real ``genai serve`` of the tiny model (with LoRA adapters), over real HTTP.

Greedy answers through the gateway must equal the model server's own answers: the gateway
relays, it does not change what the model says.
"""

from __future__ import annotations

import asyncio
import base64
from types import SimpleNamespace
from typing import Any

import httpx
import numpy as np
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

PROJECT, OTHER = "proj-a", "proj-z"
BASE = "tiny-llama"
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hello, who are you?"}]
PROMPT = "The quick brown fox"


# SQLite only here (test_gateway_isolation runs the gateway on PostgreSQL too).
pytestmark = pytest.mark.sqlite_only


@pytest.fixture
def world(platform, settings, model_server, embedder, gateway_server):
    """proj-a serves ``chat`` (the tiny model; callers may pick adapter a1 only) and
    ``extract`` (the in-process extractive backend); proj-z has a deployment of its own."""
    admin = platform()
    for project in (PROJECT, OTHER):
        admin.projects.create(project)
    spec = {
        "targets": [{"name": "local", "url": model_server.v1, "model": BASE}],
        "adapters": ["a1"],
        "retries": 0,
    }
    admin.registry.deployments.create(PROJECT, "chat", spec=spec)
    admin.registry.deployments.create(OTHER, "z-secret-model", spec=spec)
    key = admin.keys.create(PROJECT, role="developer").secret
    gw = gateway_server(settings, embedder=embedder)
    return SimpleNamespace(
        admin=admin,
        key=key,
        gw=gw,
        client=openai.OpenAI(base_url=gw.v1, api_key=key, max_retries=0, timeout=60),
        direct=openai.OpenAI(base_url=model_server.v1, api_key="unused", max_retries=0),
    )


def greedy_chat(client: openai.OpenAI, model: str, **extra: Any) -> Any:
    return client.chat.completions.create(
        model=model, messages=HELLO, max_tokens=8, temperature=0, **extra
    )


def assert_gateway_headers(headers: Any) -> str:
    """The request id and the gateway's own time are on every answer; returns the id."""
    rid = headers["x-request-id"]
    assert len(rid) == 24 and int(rid, 16) >= 0
    assert float(headers["x-genai-overhead-ms"]) >= 0.0
    return str(rid)


# ------------------------------------------------------------------ the openai SDK


def test_chat_answer_is_the_model_servers_answer_under_the_gateways_id(world):
    raw = world.client.chat.completions.with_raw_response.create(
        model="chat", messages=HELLO, max_tokens=8, temperature=0
    )
    rid = assert_gateway_headers(raw.headers)
    reply = raw.parse()
    direct = greedy_chat(world.direct, BASE)

    assert reply.id == f"chatcmpl-{rid}" != direct.id
    assert reply.choices[0].message.content == direct.choices[0].message.content
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage.completion_tokens == 8
    assert reply.usage.prompt_tokens == direct.usage.prompt_tokens


def test_completion_answer_and_id(world):
    raw = world.client.completions.with_raw_response.create(
        model="chat", prompt=PROMPT, max_tokens=6, temperature=0
    )
    rid = assert_gateway_headers(raw.headers)
    reply = raw.parse()
    direct = world.direct.completions.create(model=BASE, prompt=PROMPT, max_tokens=6, temperature=0)
    assert reply.id == f"cmpl-{rid}"
    assert reply.object == "text_completion"
    assert reply.choices[0].text == direct.choices[0].text
    assert reply.usage.total_tokens == direct.usage.total_tokens


def test_chat_stream_without_usage_asked(world):
    raw = world.client.chat.completions.with_raw_response.create(
        model="chat", messages=HELLO, max_tokens=8, temperature=0, stream=True
    )
    rid = assert_gateway_headers(raw.headers)
    assert raw.headers["content-type"].startswith("text/event-stream")
    chunks = list(raw.parse())
    direct = greedy_chat(world.direct, BASE)

    assert {c.id for c in chunks} == {f"chatcmpl-{rid}"}
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        direct.choices[0].message.content
    )
    assert all(c.usage is None for c in chunks)  # the gateway asked upstream; the client did not
    assert all(c.choices for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "length"


def test_chat_stream_with_usage_has_it_in_the_final_chunk_only(world):
    stream = world.client.chat.completions.create(
        model="chat",
        messages=HELLO,
        max_tokens=8,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    with_usage = [c for c in chunks if c.usage is not None]
    assert with_usage == [chunks[-1]]
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == 8
    assert chunks[-1].usage.total_tokens == chunks[-1].usage.prompt_tokens + 8


def test_completion_stream_with_and_without_usage(world):
    def stream(**extra: Any) -> list[Any]:
        return list(
            world.client.completions.create(
                model="chat", prompt=PROMPT, max_tokens=6, temperature=0, stream=True, **extra
            )
        )

    plain = stream()
    counted = stream(stream_options={"include_usage": True})
    text = "".join(c.choices[0].text for c in plain if c.choices)
    direct = world.direct.completions.create(model=BASE, prompt=PROMPT, max_tokens=6, temperature=0)
    assert text == direct.choices[0].text
    assert "".join(c.choices[0].text for c in counted if c.choices) == text
    assert all(c.usage is None for c in plain)
    assert [c.usage.completion_tokens for c in counted if c.usage] == [6]
    assert counted[-1].usage is not None
    assert len({c.id for c in plain}) == 1 and plain[0].id.startswith("cmpl-")
    assert plain[0].id != counted[0].id


def test_async_client_concurrent_requests_get_their_own_ids(world):
    async def main() -> list[str]:
        client = openai.AsyncOpenAI(base_url=world.gw.v1, api_key=world.key, max_retries=0)
        async with client:

            async def whole() -> str:
                reply = await client.chat.completions.create(
                    model="chat", messages=HELLO, max_tokens=4, temperature=0
                )
                assert reply.usage is not None and reply.usage.completion_tokens == 4
                return reply.id

            async def streamed() -> str:
                stream = await client.chat.completions.create(
                    model="chat:a1", messages=HELLO, max_tokens=4, stream=True
                )
                ids = {chunk.id async for chunk in stream}
                assert len(ids) == 1
                return ids.pop()

            return list(await asyncio.gather(whole(), streamed(), whole(), streamed()))

    ids = asyncio.run(main())
    assert len(set(ids)) == 4
    assert all(i.startswith("chatcmpl-") for i in ids)


# ------------------------------------------------------------------ adapters


def test_deployment_adapter_routes_to_that_adapter(world):
    via_adapter = greedy_chat(world.client, "chat:a1").choices[0].message.content
    direct_a1 = greedy_chat(world.direct, "a1").choices[0].message.content
    direct_base = greedy_chat(world.direct, BASE).choices[0].message.content
    assert direct_a1 != direct_base  # the adapter changes the answer: the check can fail
    assert via_adapter == direct_a1

    stream = world.client.chat.completions.create(
        model="chat:a1", messages=HELLO, max_tokens=8, temperature=0, stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == direct_a1


@pytest.mark.parametrize("model", ["chat:a2", "chat:nope", "nope:a1"])
def test_adapters_the_spec_does_not_list_are_not_found(world, model):
    """a2 is loaded on the model server, but the deployment does not offer it."""
    with pytest.raises(openai.NotFoundError) as caught:
        greedy_chat(world.client, model)
    assert caught.value.status_code == 404
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["code"] == "not_found"
    assert "does not exist" in body["message"]
    with pytest.raises(openai.NotFoundError):
        world.client.completions.create(model=model, prompt=PROMPT, max_tokens=2, stream=True)


# ------------------------------------------------------------------ LangChain, LlamaIndex


def test_langchain_chat_openai_invoke_and_stream(world):
    langchain_openai = pytest.importorskip("langchain_openai")
    llm = langchain_openai.ChatOpenAI(
        base_url=world.gw.v1,
        api_key=world.key,
        model="chat:a1",
        max_tokens=8,
        temperature=0,
        max_retries=0,
    )
    message = llm.invoke("Hello, who are you?")
    expected = greedy_chat(world.direct, "a1").choices[0].message.content
    assert message.content == expected
    assert message.response_metadata["id"].startswith("chatcmpl-")
    assert message.usage_metadata["output_tokens"] == 8

    pieces = list(llm.stream("Hello, who are you?"))
    assert len([p for p in pieces if p.content]) > 1  # it streamed, piece by piece
    assert "".join(str(p.content) for p in pieces) == expected


def test_llama_index_openai_like_chat_and_stream(world):
    openai_like = pytest.importorskip("llama_index.llms.openai_like")
    from llama_index.core.llms import ChatMessage

    llm = openai_like.OpenAILike(
        model="chat",
        api_base=world.gw.v1,
        api_key=world.key,
        is_chat_model=True,
        max_tokens=8,
        temperature=0,
        max_retries=0,
    )
    reply = llm.chat([ChatMessage(role="user", content=HELLO[0]["content"])])
    expected = greedy_chat(world.direct, BASE).choices[0].message.content
    assert reply.message.content == expected
    assert reply.raw.id.startswith("chatcmpl-")
    streamed = "".join(
        r.delta or ""
        for r in llm.stream_chat([ChatMessage(role="user", content=HELLO[0]["content"])])
    )
    assert streamed == expected


# ------------------------------------------------------------------ in-process targets


def test_extractive_target_answers_from_the_request_context(world):
    world.admin.registry.deployments.create(
        PROJECT, "kb", spec={"targets": [{"name": "quote", "backend": "extractive"}]}
    )
    context = [
        {"id": "leave", "text": "Employees receive 28 days of paid vacation per year."},
        {"id": "vpn", "text": "The VPN address is vpn.example.com for all staff."},
    ]
    ask = [{"role": "user", "content": "How many days of paid vacation do I get?"}]
    reply = world.client.chat.completions.create(
        model="kb", messages=ask, extra_body={"context": context}
    )
    assert "28 days" in reply.choices[0].message.content
    assert "vpn" not in reply.choices[0].message.content.lower()
    assert reply.id.startswith("chatcmpl-")

    stream = world.client.chat.completions.create(
        model="kb", messages=ask, extra_body={"context": context}, stream=True
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        reply.choices[0].message.content
    )
    assert len({c.id for c in chunks}) == 1 and chunks[0].id != reply.id


# ------------------------------------------------------------------ embeddings, models, feedback


def test_embeddings_float_and_base64(world, embedder):
    texts = ["How do I reset my password?", "The VPN address is vpn.example.com."]
    expected = embedder.embed(texts)

    as_float = world.client.embeddings.create(
        model="all-MiniLM-L6-v2", input=texts, encoding_format="float"
    )
    assert [d.index for d in as_float.data] == [0, 1]
    got = np.array([d.embedding for d in as_float.data], dtype=np.float32)
    assert got.shape == (2, 384)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert as_float.usage.prompt_tokens > 0
    assert as_float.model == "all-MiniLM-L6-v2"

    as_base64 = world.client.embeddings.create(
        model="all-MiniLM-L6-v2", input=texts, encoding_format="base64"
    )
    decoded = np.stack(
        [np.frombuffer(base64.b64decode(d.embedding), dtype=np.float32) for d in as_base64.data]
    )
    np.testing.assert_array_equal(decoded, got)

    # the SDK's default: it asks for base64 and decodes it itself
    default = world.client.embeddings.create(model="all-MiniLM-L6-v2", input=texts[0])
    np.testing.assert_allclose(default.data[0].embedding, expected[0], atol=1e-6)

    short = world.client.embeddings.create(
        model="all-MiniLM-L6-v2", input=texts[0], dimensions=64, encoding_format="float"
    )
    assert len(short.data[0].embedding) == 64
    assert np.linalg.norm(short.data[0].embedding) == pytest.approx(1.0, abs=1e-5)


def test_embeddings_refuse_a_chat_deployment_and_unknown_models(world):
    with pytest.raises(openai.BadRequestError, match="not an embedding deployment"):
        world.client.embeddings.create(model="chat", input="hello")
    with pytest.raises(openai.NotFoundError):
        world.client.embeddings.create(model="text-embedding-3-small", input="hello")


def test_models_lists_only_the_callers_deployments(world):
    world.admin.registry.deployments.create(
        PROJECT, "broken", spec={"targets": [{"name": "no-url"}]}
    )
    models = world.client.models.list()
    ids = [m.id for m in models]
    assert ids == ["broken", "chat", "chat:a1", "all-MiniLM-L6-v2"]
    assert {m.owned_by for m in models} == {PROJECT}
    assert not any("z-secret" in i for i in ids)


def test_feedback_on_a_response_id(world, settings, gateway_server):
    reply = greedy_chat(world.client, "chat")
    headers = {"authorization": f"Bearer {world.key}"}
    recorded = httpx.post(
        world.gw.v1 + "/feedback",
        headers=headers,
        json={"response_id": reply.id, "score": 0.25, "comment": "too short"},
    )
    assert recorded.status_code == 200, recorded.text
    rid = reply.id.removeprefix("chatcmpl-")
    assert recorded.json() == {"object": "feedback", "request_id": rid, "recorded": True}
    thumbs = httpx.post(
        world.gw.v1 + "/feedback", headers=headers, json={"request_id": rid, "rating": "up"}
    )
    assert thumbs.status_code == 200, thumbs.text

    # a new gateway process knows the id from the ledger, not from its memory
    world.gw.gateway.ledger.flush()
    fresh = gateway_server(settings)
    later = httpx.post(
        fresh.v1 + "/feedback", headers=headers, json={"response_id": reply.id, "score": 1}
    )
    assert later.status_code == 200, later.text
    fresh.gateway.ledger.flush()
    world.gw.gateway.ledger.flush()

    from sqlalchemy import select

    from genai.store import schema as t

    with world.admin.store.session() as s:
        rows = s.execute(
            select(
                t.Feedback.request_id, t.Feedback.deployment, t.Feedback.target, t.Feedback.score
            )
        ).all()
    assert sorted(rows, key=lambda r: r[3]) == [
        (rid, "chat", "local", 0.25),
        (rid, "chat", "local", 1.0),
        (rid, "chat", "local", 1.0),
    ]

    for bad in ({"response_id": reply.id, "score": 2}, {"response_id": reply.id}, {"score": 1}):
        refused = httpx.post(world.gw.v1 + "/feedback", headers=headers, json=bad)
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["type"] == "invalid_request_error"
    unknown = httpx.post(
        world.gw.v1 + "/feedback", headers=headers, json={"response_id": "chatcmpl-" + "0" * 24}
    )
    assert unknown.status_code == 400  # no score: refused before the lookup
    unknown = httpx.post(
        world.gw.v1 + "/feedback",
        headers=headers,
        json={"response_id": "chatcmpl-" + "0" * 24, "score": 1},
    )
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "not_found"
