"""What vLLM would refuse in a PEFT LoRA adapter, found before it is deployed.

vLLM serves plain LoRA adapters on its punica kernels. It refuses, at load time on the
GPU, what those kernels do not compute: DoRA, fully trained modules (``modules_to_save``),
LoRA on the embedding or output layer and resized vocabularies, ranks above its largest
``max_lora_rank``, and bias. It ignores per-module ranks and layer selections, which would
serve different numbers than training computed. :func:`vllm_adapter_problems` names each
of them from the adapter's ``adapter_config.json`` (and its saved tensor names), so the
registry can refuse a vLLM deployment of such an adapter when it is applied rather than
when a GPU first loads it. The transformers backend (PEFT itself) serves them all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["VLLM_MAX_LORA_RANK", "VLLM_MAX_LORA_RANKS", "vllm_adapter_problems"]

#: The values vLLM accepts for ``max_lora_rank``; an adapter's rank must not exceed the
#: deployment's, so ranks above the largest never load.
VLLM_MAX_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
VLLM_MAX_LORA_RANK = VLLM_MAX_LORA_RANKS[-1]
_EMBEDDING_LAYERS = ("embed_tokens", "lm_head", "wte", "embed_out")
_MERGE = "merge the adapter into the base model (peft merge_and_unload) and serve the result"


def vllm_adapter_problems(config: Mapping[str, Any], files: Iterable[str] = ()) -> list[str]:
    """One sentence per thing vLLM would refuse (or silently serve wrongly) in an adapter:
    what it is, why, and what to do. Empty when vLLM can serve it.

    ``config`` is the adapter's ``adapter_config.json``; ``files`` are the names saved with
    it: file names, and tensor names where they were read (safetensors headers).
    """
    problems: list[str] = []
    if config.get("use_dora"):
        problems.append(
            "use_dora is set: vLLM has no DoRA kernels and refuses DoRA adapters "
            f"(vllm#6983); train a plain LoRA (use_dora=false), or {_MERGE}."
        )
    saved = _names(config.get("modules_to_save"))
    if saved:
        problems.append(
            f"modules_to_save lists {', '.join(saved)}: vLLM loads only LoRA weights, not "
            f"fully trained modules (vllm#9280); {_MERGE}, or train without modules_to_save."
        )
    embedding = [m for m in _names(config.get("target_modules")) if _is_embedding(m)]
    if embedding:
        problems.append(
            f"target_modules includes {', '.join(embedding)}: vLLM does not apply LoRA to "
            "the embedding or output layer; train without them in target_modules, "
            f"or {_MERGE}."
        )
    if config.get("trainable_token_indices"):
        problems.append(
            "trainable_token_indices trains rows of the embedding (new or resized tokens): "
            f"vLLM cannot load trained embeddings; keep the base model's vocabulary, or {_MERGE}."
        )
    saved_embeddings = sorted({f for f in files if _saves_embeddings(f)})
    if saved_embeddings:
        shown = ", ".join(saved_embeddings[:3]) + (", ..." if len(saved_embeddings) > 3 else "")
        problems.append(
            f"the adapter saves embedding or output-layer weights ({shown}), as a resized "
            "vocabulary does: vLLM cannot load them; keep the base model's vocabulary "
            f"(save_embedding_layers=False), or {_MERGE}."
        )
    problems.extend(_rank_problems(config))
    return problems


def _rank_problems(config: Mapping[str, Any]) -> list[str]:
    problems = []
    rank = config.get("r")
    if isinstance(rank, int) and rank > VLLM_MAX_LORA_RANK:
        problems.append(
            f"rank {rank} is above {VLLM_MAX_LORA_RANK}, the largest max_lora_rank vLLM "
            f"supports ({', '.join(map(str, VLLM_MAX_LORA_RANKS))}); train with "
            f"r <= {VLLM_MAX_LORA_RANK} (and at most the deployment's max_lora_rank)."
        )
    for key in ("rank_pattern", "alpha_pattern"):
        if config.get(key):
            problems.append(
                f"{key} gives some modules their own {key.split('_')[0]}: vLLM applies one "
                "rank and one alpha to the whole adapter and would serve other numbers "
                f"than training computed; train without {key}, or {_MERGE}."
            )
    if config.get("layers_to_transform") is not None:
        problems.append(
            "layers_to_transform limits LoRA to some layers: vLLM does not read it and "
            f"would serve other numbers than training computed; train on all layers, or {_MERGE}."
        )
    bias = config.get("bias", "none")
    if bias not in (None, "none"):
        problems.append(
            f"bias={bias!r} trains bias vectors: vLLM loads no LoRA bias (only with "
            f"--enable-lora-bias in older versions); train with bias='none', or {_MERGE}."
        )
    return problems


def _names(value: Any) -> list[str]:
    if not value:
        return []
    if isinstance(value, str):
        return [value]
    return sorted(str(v) for v in value)


def _is_embedding(module: str) -> bool:
    return any(layer in module for layer in _EMBEDDING_LAYERS)


def _saves_embeddings(name: str) -> bool:
    """A file or tensor of trained embeddings (not a LoRA factor of another module)."""
    if "new_embeddings" in name:
        return True
    return _is_embedding(name) and "lora_" not in name
