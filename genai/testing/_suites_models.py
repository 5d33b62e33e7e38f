"""``LLMBackendSuite`` and ``EmbedderSuite``: the model contracts, for any backend.

    class TestMyBackend(LLMBackendSuite):
        @pytest.fixture
        async def backend(self):
            llm = MyBackend(...)
            await llm.start()
            yield llm
            await llm.close()

        @pytest.fixture
        def adapter_path(self):
            return "/adapters/support"   # or None: the backend has no adapters

The LLM suite's tests are async and run on anyio's pytest plugin (anyio comes with httpx),
on asyncio unless a subclass overrides the ``anyio_backend`` fixture. Its requests are
greedy and short (``temperature=0``, ``max_tokens=8``) so that a real model answers in
moments and the same request gets the same answer; a backend that needs more than a
question (the ``extractive`` backend needs context passages) overrides ``chat_request`` and
``prompt_request``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from genai.errors import NotFoundError, UsageError, ValidationError
from genai.models._protocols import Embedder, LLMBackend
from genai.models._types import (
    ChatMessage,
    Generation,
    GenerationChunk,
    GenerationRequest,
    LoadedAdapter,
    SamplingParams,
)

__all__ = ["EmbedderSuite", "LLMBackendSuite"]

QUESTION = "What is the capital of France?"
GREEDY = SamplingParams(temperature=0.0, max_tokens=8)


async def _chunks(backend: LLMBackend, request: GenerationRequest) -> list[GenerationChunk]:
    return [chunk async for chunk in backend.stream(request)]


def _with(request: GenerationRequest, **changes: Any) -> GenerationRequest:
    """A copy of ``request`` with ``changes`` (``params`` merged into its sampling)."""
    params = changes.pop("params", None)
    if params is not None:
        changes["params"] = request.params.model_copy(update=params)
    return request.model_copy(update=changes)


class LLMBackendSuite:
    """Subclass it and provide the ``backend`` fixture: a started backend (closed after).

    Optional fixtures: ``adapter_path`` (a LoRA adapter the backend can load; ``None``, the
    default, for a backend without adapters, whose loads must be refused),
    ``chat_request`` and ``prompt_request`` (short greedy requests it can answer).
    """

    pytestmark: pytest.MarkDecorator | list[pytest.MarkDecorator] = pytest.mark.anyio

    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    @pytest.fixture
    def backend(self) -> LLMBackend:
        raise NotImplementedError("a subclass of LLMBackendSuite provides the `backend` fixture")

    @pytest.fixture
    def adapter_path(self) -> str | None:
        return None

    @pytest.fixture
    def chat_request(self) -> GenerationRequest:
        return GenerationRequest(
            messages=[ChatMessage(role="user", content=QUESTION)], params=GREEDY
        )

    @pytest.fixture
    def prompt_request(self) -> GenerationRequest:
        return GenerationRequest(prompt=QUESTION, params=GREEDY)

    @pytest.fixture(params=["chat", "prompt"])
    def each_request(
        self,
        request: pytest.FixtureRequest,
        chat_request: GenerationRequest,
        prompt_request: GenerationRequest,
    ) -> GenerationRequest:
        """The chat request, then the prompt request (a test that takes it runs twice)."""
        return chat_request if request.param == "chat" else prompt_request

    # ------------------------------------------------------------ identity

    async def test_it_keeps_the_protocol(self, backend: LLMBackend) -> None:
        assert isinstance(backend, LLMBackend)
        assert isinstance(backend.model_id, str) and backend.model_id
        window = backend.context_window
        assert window is None or (isinstance(window, int) and window > 0)

    # ------------------------------------------------------------ generation

    async def test_a_generation_has_text_a_finish_and_usage(
        self, backend: LLMBackend, each_request: GenerationRequest
    ) -> None:
        request = each_request
        result = await backend.generate(request)
        assert isinstance(result, Generation)
        assert result.finish_reason in ("stop", "length")
        assert result.tool_calls is None  # no tools were offered
        assert result.prompt_tokens > 0
        assert 0 <= result.completion_tokens <= (request.params.max_tokens or 0)

    async def test_count_tokens_is_what_a_generation_reports(
        self, backend: LLMBackend, each_request: GenerationRequest
    ) -> None:
        request = each_request
        counted = await backend.count_tokens(request)
        assert counted == (await backend.generate(request)).prompt_tokens
        assert counted == await backend.count_tokens(request)  # deterministic

    async def test_a_longer_prompt_counts_more_tokens(
        self, backend: LLMBackend, prompt_request: GenerationRequest
    ) -> None:
        prompt = prompt_request.prompt or ""
        longer = _with(prompt_request, prompt=prompt + " Please answer in one short sentence.")
        assert await backend.count_tokens(longer) > await backend.count_tokens(prompt_request)

    async def test_max_tokens_bounds_the_completion(
        self, backend: LLMBackend, chat_request: GenerationRequest
    ) -> None:
        full = await backend.generate(chat_request)
        if full.completion_tokens < 2:
            pytest.skip("the answer is too short to cut (give a longer chat_request)")
        cut = await backend.generate(_with(chat_request, params={"max_tokens": 1}))
        assert cut.completion_tokens <= 1
        assert cut.finish_reason == "length"
        assert len(cut.text) < len(full.text) and full.text.startswith(cut.text.strip())

    async def test_a_stop_sequence_ends_the_text_before_it(
        self, backend: LLMBackend, chat_request: GenerationRequest
    ) -> None:
        full = (await backend.generate(chat_request)).text
        middle = len(full) // 2
        stop = full[middle : middle + 3]
        if len(full) < 6 or not stop.strip():
            pytest.skip("the answer is too short to stop inside (give a longer chat_request)")
        cut = await backend.generate(_with(chat_request, params={"stop": [stop]}))
        assert cut.text.rstrip() == full[: full.index(stop)].rstrip()
        assert cut.finish_reason == "stop"

    async def test_concurrent_generations_agree(
        self, backend: LLMBackend, chat_request: GenerationRequest
    ) -> None:
        results = await asyncio.gather(*(backend.generate(chat_request) for _ in range(4)))
        assert len({(r.text, r.finish_reason, r.completion_tokens) for r in results}) == 1

    # ------------------------------------------------------------ streaming

    async def test_a_stream_adds_up_to_the_generation(
        self, backend: LLMBackend, each_request: GenerationRequest
    ) -> None:
        request = each_request
        chunks = await _chunks(backend, request)
        whole = await backend.generate(request)
        assert chunks and all(isinstance(c, GenerationChunk) for c in chunks)
        assert all(c.finish_reason is None for c in chunks[:-1])
        last = chunks[-1]
        assert last.finish_reason == whole.finish_reason
        assert "".join(c.text for c in chunks) == whole.text
        assert (last.prompt_tokens, last.completion_tokens) == (
            whole.prompt_tokens,
            whole.completion_tokens,
        )

    async def test_a_stream_closed_early_leaves_the_backend_usable(
        self, backend: LLMBackend, chat_request: GenerationRequest
    ) -> None:
        stream: Any = backend.stream(chat_request)
        first = await anext(stream)
        assert isinstance(first, GenerationChunk)
        await stream.aclose()
        assert (await backend.generate(chat_request)).finish_reason in ("stop", "length")

    # ------------------------------------------------------------ refusals

    async def test_an_unknown_adapter_is_not_found(
        self, backend: LLMBackend, chat_request: GenerationRequest
    ) -> None:
        request = _with(chat_request, adapter="no-such-adapter")
        with pytest.raises(NotFoundError, match="no-such-adapter"):
            await backend.generate(request)
        with pytest.raises(NotFoundError, match="no-such-adapter"):
            await _chunks(backend, request)

    async def test_the_base_model_answers_by_its_name(
        self, backend: LLMBackend, chat_request: GenerationRequest
    ) -> None:
        plain = await backend.generate(chat_request)
        named = await backend.generate(_with(chat_request, adapter=backend.model_id))
        assert (named.text, named.finish_reason) == (plain.text, plain.finish_reason)

    async def test_a_request_past_the_context_window_is_refused(
        self, backend: LLMBackend, chat_request: GenerationRequest
    ) -> None:
        window = backend.context_window
        if window is None:
            pytest.skip("the backend has no context window")
        with pytest.raises(ValidationError):
            await backend.generate(_with(chat_request, params={"max_tokens": window + 1}))

    # ------------------------------------------------------------ adapters

    async def test_adapters_load_serve_and_unload(
        self, backend: LLMBackend, adapter_path: str | None, chat_request: GenerationRequest
    ) -> None:
        if adapter_path is None:
            with pytest.raises(UsageError):
                await backend.load_adapter("suite-adapter", "/adapters/suite-adapter")
            assert "suite-adapter" not in [a.name for a in backend.adapters()]
            return
        info = await backend.load_adapter("suite-adapter", adapter_path)
        assert isinstance(info, LoadedAdapter)
        assert (info.name, info.path, info.base_model) == (
            "suite-adapter",
            adapter_path,
            backend.model_id,
        )
        assert info in backend.adapters()
        served = await backend.generate(_with(chat_request, adapter="suite-adapter"))
        assert served.finish_reason in ("stop", "length")
        await backend.unload_adapter("suite-adapter")
        assert "suite-adapter" not in [a.name for a in backend.adapters()]
        with pytest.raises(NotFoundError):
            await backend.generate(_with(chat_request, adapter="suite-adapter"))

    async def test_a_loaded_name_is_refused_unless_replaced(
        self, backend: LLMBackend, adapter_path: str | None
    ) -> None:
        if adapter_path is None:
            pytest.skip("the backend has no adapters")
        await backend.load_adapter("suite-adapter", adapter_path)
        with pytest.raises(UsageError):
            await backend.load_adapter("suite-adapter", adapter_path)
        again = await backend.load_adapter("suite-adapter", adapter_path, replace=True)
        assert again.name == "suite-adapter"
        assert [a.name for a in backend.adapters()].count("suite-adapter") == 1
        await backend.unload_adapter("suite-adapter")

    async def test_unloading_an_unknown_adapter_is_not_found(
        self, backend: LLMBackend, adapter_path: str | None
    ) -> None:
        if adapter_path is None:
            with pytest.raises(UsageError):
                await backend.unload_adapter("no-such-adapter")
            return
        with pytest.raises(NotFoundError):
            await backend.unload_adapter("no-such-adapter")


class EmbedderSuite:
    """Subclass it and provide the ``embedder`` fixture (loaded or not: the first call may
    load it). Which texts a model finds similar is the model's business, not the suite's."""

    @pytest.fixture
    def embedder(self) -> Embedder:
        raise NotImplementedError("a subclass of EmbedderSuite provides the `embedder` fixture")

    def test_it_keeps_the_protocol(self, embedder: Embedder) -> None:
        assert isinstance(embedder, Embedder)
        assert isinstance(embedder.model_name, str) and embedder.model_name
        assert isinstance(embedder.dimension, int) and embedder.dimension > 0

    def test_rows_are_unit_float32_vectors_of_the_dimension(self, embedder: Embedder) -> None:
        import numpy as np

        texts = ["Refunds take ten days.", "How long do refunds take?", "Pizza.", ""]
        vectors = embedder.embed(texts)
        assert isinstance(vectors, np.ndarray) and vectors.dtype == np.float32
        assert vectors.shape == (len(texts), embedder.dimension)
        assert np.all(np.isfinite(vectors))
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)

    def test_the_same_text_gets_the_same_vector(self, embedder: Embedder) -> None:
        import numpy as np

        once = embedder.embed(["a question about invoices", "another text"])
        again = embedder.embed(["another text", "a question about invoices", "a third one"])
        assert np.allclose(once[0], again[1], atol=1e-4)
        assert np.allclose(once[1], again[0], atol=1e-4)  # nor on its batch or position
        assert not np.allclose(once[0], once[1], atol=1e-3)

    def test_no_texts_give_an_empty_matrix(self, embedder: Embedder) -> None:
        assert embedder.embed([]).shape == (0, embedder.dimension)

    def test_one_string_is_refused(self, embedder: Embedder) -> None:
        with pytest.raises(ValidationError):
            embedder.embed("one string")  # a str is a sequence of one-letter texts
