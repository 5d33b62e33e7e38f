"""``FakeEmbedder``: a deterministic :class:`~genai.models.Embedder` with no model behind it.

Each text becomes a unit-length float32 vector derived from a hash of it: identical texts
always get identical vectors (in any process, batch or order), different texts nearly
orthogonal ones. With ``words=True`` a text is a bag of words instead (each lower-cased
word adds its own hashed direction), so texts that share words are similar: "how do I open
an account" and "open an account how do I" are the same vector, and "how can I open an
account" is close to them. Nothing is downloaded and NumPy is imported on first use.

    embedder = FakeEmbedder(dimension=32, words=True)
    cache = SemanticCache(InMemoryVectorStore(), embedder, ...)
    ...
    assert embedder.calls == [["how do I open an account"]]
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from genai.errors import ValidationError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["FakeEmbedder"]

_WORD = re.compile(r"\w+")


class FakeEmbedder:
    """Text → unit-length float32 vectors, by hashing (see the module's docstring).

    ``dimension`` and ``model_name`` are what it declares (a cache or a knowledge base keys
    its collections by them). ``calls`` records the texts of each :meth:`embed` call, oldest
    first, for tests that count what was embedded. Safe to share between threads.
    """

    def __init__(
        self, dimension: int = 64, *, model_name: str = "fake-embedder", words: bool = False
    ) -> None:
        if dimension < 2:
            raise ValidationError(
                f"dimension must be at least 2, not {dimension}", field="dimension"
            )
        if not model_name:
            raise ValidationError("model_name must not be empty", field="model_name")
        self._dimension = dimension
        self._model_name = model_name
        self._words = words
        self.calls: list[list[str]] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        kind = ", words=True" if self._words else ""
        return f"FakeEmbedder({self._dimension}, model_name={self._model_name!r}{kind})"

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def model_name(self) -> str:
        return self._model_name

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """A float32 array of shape ``(len(texts), dimension)``, rows of unit length."""
        import numpy as np

        if isinstance(texts, str):
            raise ValidationError("embed takes a sequence of texts, not one string", field="texts")
        batch = [str(text) for text in texts]
        with self._lock:
            self.calls.append(batch)
        rows = np.zeros((len(batch), self._dimension), dtype=np.float32)
        for i, text in enumerate(batch):
            rows[i] = self._vector(text)
        return rows

    def _vector(self, text: str) -> NDArray[np.float32]:
        import numpy as np

        row = np.zeros(self._dimension, dtype=np.float64)
        if self._words:
            for word in _WORD.findall(text.lower()):
                digest = _digest(word)
                index = int.from_bytes(digest[:8], "little") % self._dimension
                row[index] += 1.0 if digest[8] & 1 else -1.0
        if not row.any():  # the text mode, or a text without words
            seed = int.from_bytes(_digest(text), "little")
            row = np.random.default_rng(seed).standard_normal(self._dimension)
        return (row / np.linalg.norm(row)).astype(np.float32)


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()
