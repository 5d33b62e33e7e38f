"""The ``openai`` backend pointed at ``genai serve``: the protocol a vLLM server speaks,
adapter loading included, end to end between two of the platform's own parts."""

from __future__ import annotations

import asyncio

import pytest

from genai.errors import NotFoundError, ValidationError
from genai.models import (
    ChatMessage,
    GenerationChunk,
    GenerationRequest,
    LLMBackend,
    SamplingParams,
    create_backend,
)

GREEDY = SamplingParams(max_tokens=12, temperature=0.0)


def _chat(text: str, adapter: str | None = None) -> GenerationRequest:
    return GenerationRequest(
        messages=[ChatMessage(role="user", content=text)], adapter=adapter, params=GREEDY
    )


async def _collect(backend: LLMBackend, request: GenerationRequest) -> tuple[str, GenerationChunk]:
    parts, last = [], None
    async for chunk in backend.stream(request):
        parts.append(chunk.text)
        last = chunk
    assert last is not None
    return "".join(parts), last


def test_the_openai_backend_drives_genai_serve(serve, tiny) -> None:
    server = serve(tiny.model, adapters={"a1": tiny.adapters["a1"]})
    local = server.backend

    async def scenario() -> None:
        remote = create_backend("openai", base_url=server.url)
        await remote.start()
        try:
            assert remote.model_id == local.model_id
            assert remote.context_window == local.context_window
            assert [a.name for a in remote.adapters()] == ["a1"]

            # the same greedy answer as the served backend gives in process
            for adapter in (None, "a1"):
                expected = await local.generate(_chat("How do I open an account?", adapter))
                got = await remote.generate(_chat("How do I open an account?", adapter))
                assert got.text == expected.text and got.finish_reason == expected.finish_reason
                assert (got.prompt_tokens, got.completion_tokens) == (
                    expected.prompt_tokens,
                    expected.completion_tokens,
                )
                text, last = await _collect(remote, _chat("How do I open an account?", adapter))
                assert text == expected.text
                assert last.finish_reason == expected.finish_reason
                assert last.completion_tokens == expected.completion_tokens

            # token counts come from the server's /tokenize, not an estimate
            request = _chat("Where is my invoice?")
            assert await remote.count_tokens(request) == await local.count_tokens(request)
            prompt = GenerationRequest(prompt="Hello there", params=GREEDY)
            assert await remote.count_tokens(prompt) == await local.count_tokens(prompt)

            # vLLM's run-time adapter API, through the backend
            await remote.load_adapter("a2", str(tiny.adapters["a2"]))
            assert sorted(a.name for a in remote.adapters()) == ["a1", "a2"]
            assert "a2" in [a.name for a in local.adapters()]
            with_a2 = await remote.generate(_chat("Where is my invoice?", "a2"))
            assert with_a2.text == (await local.generate(_chat("Where is my invoice?", "a2"))).text
            with pytest.raises(ValidationError, match="already loaded"):
                await remote.load_adapter("a2", str(tiny.adapters["a2"]))
            await remote.load_adapter("a2", str(tiny.adapters["a3"]), replace=True)
            await remote.unload_adapter("a2")
            assert [a.name for a in remote.adapters()] == ["a1"]
            with pytest.raises(NotFoundError):
                await remote.generate(_chat("hi", "a2"))
            with pytest.raises(ValidationError, match="not a LoRA adapter"):
                await remote.load_adapter("bad", str(tiny.model))
        finally:
            await remote.close()

    asyncio.run(scenario())
