"""The contracts every model backend keeps, and the registry that finds them by name."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from genai.errors import ValidationError
from genai.models._types import (
    Generation,
    GenerationChunk,
    GenerationRequest,
    LoadedAdapter,
    TokenLogprob,
)
from genai.plugins import Registry

__all__ = [
    "EMBEDDERS",
    "LLM_BACKENDS",
    "Embedder",
    "LLMBackend",
    "Tokenizing",
    "backend_names",
    "collect",
    "create_backend",
    "refuse_unsupported",
    "register_backend",
]


@runtime_checkable
class LLMBackend(Protocol):
    """A generative model, optionally with LoRA adapters chosen per request.

    Heavy work (loading weights, opening engines) happens in :meth:`start`, not in the
    constructor. Errors are translated at this boundary: a bad request raises a
    :class:`~genai.errors.UsageError`, an unknown adapter :class:`~genai.errors.NotFoundError`,
    an upstream failure :class:`~genai.errors.BackendError`.
    """

    @property
    def model_id(self) -> str:
        """The name the base model is served under."""
        ...

    @property
    def context_window(self) -> int | None: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def generate(self, request: GenerationRequest) -> Generation: ...

    def stream(self, request: GenerationRequest) -> AsyncGenerator[GenerationChunk, None]:
        """Chunks of the generation; closing the iterator cancels the generation."""
        ...

    async def count_tokens(self, request: GenerationRequest) -> int:
        """Prompt tokens the request would use (chat template applied)."""
        ...

    def adapters(self) -> list[LoadedAdapter]: ...

    async def load_adapter(self, name: str, path: str, *, replace: bool = False) -> LoadedAdapter:
        """Load a LoRA adapter at run time; ``replace`` reloads a name already loaded."""
        ...

    async def unload_adapter(self, name: str) -> None: ...


@runtime_checkable
class Tokenizing(Protocol):
    """A backend whose tokenizer callers may use (vLLM's ``/tokenize``, ``/detokenize``
    and ``/tokenizer_info``): token-id prompts are only meaningful with it."""

    async def tokenize(
        self, request: GenerationRequest, *, add_special_tokens: bool = True
    ) -> list[int]:
        """The prompt's token ids (for messages, with the chat template and tools);
        ``add_special_tokens`` adds the tokenizer's own (a BOS) to a text prompt."""
        ...

    async def detokenize(self, tokens: list[int]) -> str: ...

    def tokenizer_info(self) -> dict[str, Any]:
        """The tokenizer's class, size, special tokens and chat template (JSON values)."""
        ...


@runtime_checkable
class Embedder(Protocol):
    """Text → unit-length vectors."""

    @property
    def model_name(self) -> str:
        """The embedding model's name: vectors of two names never share a collection."""
        ...

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> Any:
        """A float32 array of shape (len(texts), dimension), rows L2-normalised."""
        ...


async def collect(chunks: AsyncIterator[GenerationChunk]) -> Generation:
    """The whole generation a stream of chunks adds up to (backends' ``generate``)."""
    parts: list[str] = []
    scored: list[TokenLogprob] | None = None
    first: GenerationChunk | None = None
    last = GenerationChunk()
    async for chunk in chunks:
        first = first or chunk
        parts.append(chunk.text)
        if chunk.logprobs is not None:
            scored = (scored or []) + chunk.logprobs
        last = chunk
    if last.finish_reason is None or first is None:
        raise RuntimeError("the stream ended without a finish reason")
    return Generation(
        text="".join(parts),
        finish_reason=last.finish_reason,
        prompt_tokens=last.prompt_tokens or 0,
        completion_tokens=last.completion_tokens or 0,
        tool_calls=last.tool_calls,
        logprobs=scored,
        prompt_logprobs=first.prompt_logprobs,
        prompt_text=first.prompt_text,
    )


#: What a request may ask beyond plain text generation, by its OpenAI field name.
FEATURES = ("response_format", "tools", "logprobs", "echo", "prompt_ids")


def refuse_unsupported(
    request: GenerationRequest, *, backend: str, supports: Sequence[str] = (), hint: str = ""
) -> None:
    """Refuse (a 400 naming the field) what ``request`` asks that the ``backend`` cannot
    honour: a backend never ignores a field silently. ``supports`` lists the features of
    :data:`FEATURES` it honours."""
    asked = {
        "response_format": request.response_format is not None
        and request.response_format.constrained,
        "tools": bool(request.tools) and request.tool_choice != "none",
        "logprobs": request.logprobs is not None,
        "echo": request.echo,
        "prompt_ids": request.prompt_ids is not None,
    }
    for feature in FEATURES:
        if asked[feature] and feature not in supports:
            field = "prompt" if feature == "prompt_ids" else feature
            what = "token-id prompts" if feature == "prompt_ids" else field
            raise ValidationError(
                f"{what} {'are' if what.endswith('s') else 'is'} not supported by the "
                f"{backend} backend{': ' + hint if hint else ''}",
                field=field,
            )


BackendFactory = Callable[..., LLMBackend]

#: LLM backends by name; third parties add theirs under the ``genai.llm_backends`` entry
#: point group (a factory called with the backend's options, e.g. a class).
LLM_BACKENDS: Registry[LLMBackend] = Registry(
    "LLM",
    group="genai.llm_backends",
    builtins={
        "transformers": "genai.models.transformers:TransformersBackend",
        "openai": "genai.models._openai:OpenAIBackend",
        "vllm": "genai.models._vllm:VLLMBackend",
        "extractive": "genai.models._extractive:ExtractiveBackend",
        "fake": "genai.testing._fake_llm:FakeLLM",  # scripted replies, for tests
    },
)


#: Embedders by name; third parties add theirs under the ``genai.embedders`` entry point
#: group (a factory called with ``model=`` the model to load, and any other options).
EMBEDDERS: Registry[Embedder] = Registry(
    "embedder",
    group="genai.embedders",
    builtins={"sentence-transformers": "genai.models._embedders:SentenceTransformerEmbedder"},
)


def register_backend(name: str, factory: BackendFactory | str) -> None:
    """Make a backend available by name (a callable, or ``"module:attribute"``)."""
    LLM_BACKENDS.register(name, factory)


def backend_names() -> list[str]:
    return LLM_BACKENDS.names()


def create_backend(name: str, /, **options: Any) -> LLMBackend:
    """Build the backend registered as ``name`` with its keyword options (not started)."""
    return LLM_BACKENDS.create(name, **options)
