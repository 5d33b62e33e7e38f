"""The ``transformers`` backend: local Hugging Face models, CPU or CUDA, with LoRA
adapters through PEFT, batched across requests and adapters.

Importing this package loads neither PyTorch nor transformers: :class:`TransformersBackend`
is imported on first use of the name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from genai._lazy import lazy_attributes

if TYPE_CHECKING:
    from genai.models.transformers._backend import TransformersBackend

__all__ = ["TransformersBackend"]


__getattr__ = lazy_attributes(
    __name__, {"TransformersBackend": "genai.models.transformers._backend"}
)
