"""Fine-tuning: LoRA / QLoRA training that registers its runs and adapters.

Filled by the fine-tuning issue; it imports ``genai`` only.
"""

__all__: list[str] = []
