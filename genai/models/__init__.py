"""Model backends: the ``LLMBackend`` and ``Embedder`` protocols, their types, and the
registry that builds a backend by name (``transformers``, ``openai``, ``vllm``,
``extractive``, or a third party's through the ``genai.llm_backends`` entry point).

Backends import their heavy dependencies when built, never when this package is imported.
"""

from genai.models._protocols import (
    Embedder,
    LLMBackend,
    backend_names,
    create_backend,
    register_backend,
)
from genai.models._types import (
    ChatMessage,
    ContextPassage,
    FinishReason,
    Generation,
    GenerationChunk,
    GenerationRequest,
    LoadedAdapter,
    SamplingParams,
    ToolCall,
)

__all__ = [
    "ChatMessage",
    "ContextPassage",
    "Embedder",
    "FinishReason",
    "Generation",
    "GenerationChunk",
    "GenerationRequest",
    "LLMBackend",
    "LoadedAdapter",
    "SamplingParams",
    "ToolCall",
    "backend_names",
    "create_backend",
    "register_backend",
]
