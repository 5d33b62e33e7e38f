"""The ``transformers`` backend: local Hugging Face models, CPU or CUDA, with LoRA
adapters through PEFT, batched across requests and adapters.

Importing this package loads neither PyTorch nor transformers: :class:`TransformersBackend`
is imported on first use of the name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from genai.models.transformers._backend import TransformersBackend

__all__ = ["TransformersBackend"]


def __getattr__(name: str) -> Any:
    if name != "TransformersBackend":
        raise AttributeError(f"module 'genai.models.transformers' has no attribute {name!r}")
    from genai.models.transformers._backend import TransformersBackend

    globals()[name] = TransformersBackend
    return TransformersBackend
