"""Model backends: the ``LLMBackend`` and ``Embedder`` protocols, their types, and the
registry that builds a backend by name (``transformers``, ``openai``, ``vllm``,
``extractive``, ``fake`` — :class:`genai.testing.FakeLLM`, scripted, for tests — or a third
party's through the ``genai.llm_backends`` entry point).

Embedders are found the same way: :data:`EMBEDDERS` (``sentence-transformers``, or a third
party's through the ``genai.embedders`` entry point), built by :func:`create_embedder`.
:mod:`genai.plugins` describes the registries.

:func:`convert_gguf` imports a llama-architecture GGUF file as a Hugging Face directory;
:func:`vllm_adapter_problems` names what vLLM would refuse in a LoRA adapter.

Backends import their heavy dependencies when built, never when this package is imported
(:class:`OpenAIBackend` itself is imported on first use of the name).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from genai._lazy import lazy_attributes
from genai.models._adapter_lint import vllm_adapter_problems
from genai.models._embedders import (
    BUNDLED_EMBEDDING_MODEL,
    DEFAULT_EMBEDDER,
    SentenceTransformerEmbedder,
    create_embedder,
)
from genai.models._extractive import NO_CONTEXT_ANSWER, NO_MATCH_ANSWER, ExtractiveBackend
from genai.models._gguf import convert_gguf
from genai.models._protocols import (
    EMBEDDERS,
    LLM_BACKENDS,
    Embedder,
    LLMBackend,
    Tokenizing,
    backend_names,
    create_backend,
    refuse_unsupported,
    register_backend,
)
from genai.models._types import (
    ChatMessage,
    ContextPassage,
    FinishReason,
    FunctionChoice,
    Generation,
    GenerationChunk,
    GenerationRequest,
    LoadedAdapter,
    ResponseFormat,
    SamplingParams,
    TokenLogprob,
    ToolCall,
    ToolChoice,
    TopLogprob,
)

if TYPE_CHECKING:
    from genai.models._openai import OpenAIBackend
    from genai.models._vllm import VLLMBackend

__all__ = [
    "BUNDLED_EMBEDDING_MODEL",
    "DEFAULT_EMBEDDER",
    "EMBEDDERS",
    "LLM_BACKENDS",
    "NO_CONTEXT_ANSWER",
    "NO_MATCH_ANSWER",
    "ChatMessage",
    "ContextPassage",
    "Embedder",
    "ExtractiveBackend",
    "FinishReason",
    "FunctionChoice",
    "Generation",
    "GenerationChunk",
    "GenerationRequest",
    "LLMBackend",
    "LoadedAdapter",
    "OpenAIBackend",
    "ResponseFormat",
    "SamplingParams",
    "SentenceTransformerEmbedder",
    "TokenLogprob",
    "Tokenizing",
    "ToolCall",
    "ToolChoice",
    "TopLogprob",
    "VLLMBackend",
    "backend_names",
    "convert_gguf",
    "create_backend",
    "create_embedder",
    "refuse_unsupported",
    "register_backend",
    "vllm_adapter_problems",
]

# Backends whose modules import more than this package should: imported on first use.
_LAZY = {
    "OpenAIBackend": "genai.models._openai",
    "VLLMBackend": "genai.models._vllm",
}


__getattr__ = lazy_attributes(__name__, _LAZY)
