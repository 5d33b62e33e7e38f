"""The ``transformers`` backend: local Hugging Face models, CPU or CUDA, with LoRA
adapters through PEFT, batched across requests and adapters."""

from genai.models.transformers._backend import TransformersBackend

__all__ = ["TransformersBackend"]
