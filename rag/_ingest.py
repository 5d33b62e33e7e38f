"""The ingestion pipeline: sources → documents → chunks → vectors → Chroma, overlapped.

Three stages run at once so the encoder — the only expensive step — never waits:

    loader/splitter thread ──▶ embedding (this thread, torch on every core) ──▶ writer thread
                                                                               (Chroma, SQL)

Incremental and crash-safe by construction:

- a source is *done* only when its record (its content hash) is written, and that happens
  after every chunk of that content is in the vector store;
- chunk ids are deterministic (source key, content hash, chunk index), so writing a chunk
  twice overwrites it — a re-run after a crash cannot duplicate anything;
- when a source is done, its chunks from any other content hash (an older version, or a
  version a crashed run left half-written) are deleted;
- before embedding, chunks whose exact text is already stored (``text_hash``) reuse the
  stored vector: re-running after a crash, or editing one paragraph of a long document,
  embeds only what is new.
"""

from __future__ import annotations

import functools
import hashlib
import json
import queue
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from genai.errors import GenAIError
from rag._loaders import Loader, load_file, modified_time
from rag._splitters import Splitter, header_text
from rag._types import Document

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from genai.models import Embedder
    from rag._chroma import ChunkStore

__all__ = [
    "STANDARD_KEYS",
    "Pipeline",
    "Prepared",
    "Source",
    "document_sources",
    "file_sources",
    "header_text",
    "source_key",
]

#: Flat metadata keys the platform writes; a loader's extra field of the same name is
#: stored as ``x_<name>``.
STANDARD_KEYS = frozenset(
    {
        "source",
        "title",
        "page",
        "record",
        "heading",
        "heading_json",
        "modified",
        "chunk_index",
        "start",
        "end",
        "doc_key",
        "doc_hash",
        "text_hash",
    }
)
Redact = Callable[[Sequence[str]], Sequence[str]]
_AHEAD = 1024  # sources loaded and split ahead of the encoder
T = TypeVar("T")


def source_key(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()


@dataclass(frozen=True)
class Source:
    """One unit of incremental sync: a file, or the documents given under one source name."""

    source: str
    content_hash: str
    load: Callable[[], list[Document]]
    modified: datetime | None = None

    @property
    def key(self) -> str:
        return source_key(self.source)


def file_sources(files: Iterable[Path], loaders: dict[str, Loader] | None) -> list[Source]:
    """Sources for files, hashed by their bytes (the same bytes are never re-ingested)."""
    out = []
    for path in files:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
        out.append(
            Source(
                source=str(path),
                content_hash=digest.hexdigest(),
                load=functools.partial(load_file, path, loaders),
                modified=modified_time(path),
            )
        )
    return out


def document_sources(documents: Iterable[Document]) -> list[Source]:
    """Documents given in code, grouped by ``source``; hashed by their content."""
    groups: dict[str, list[Document]] = {}
    for doc in documents:
        groups.setdefault(doc.source, []).append(doc)
    out = []
    for name, docs in groups.items():
        payload = json.dumps([d.model_dump(mode="json") for d in docs], sort_keys=True)
        out.append(
            Source(
                source=name,
                content_hash=hashlib.sha256(payload.encode()).hexdigest(),
                load=functools.partial(list, docs),
                modified=max((d.modified for d in docs if d.modified), default=None),
            )
        )
    return out


@dataclass
class Prepared:
    """A source loaded and split: everything its chunks need except vectors."""

    source: Source
    ids: list[str] = field(default_factory=list)
    bodies: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)  # what is embedded (header + body)
    metas: list[dict[str, Any]] = field(default_factory=list)
    title: str = ""
    error: str | None = None
    written: int = 0


def prepare(source: Source, splitter: Splitter, redact: Redact | None, header: bool) -> Prepared:
    docs = source.load()
    if redact is not None and docs:
        clean = list(redact([d.text for d in docs]))
        docs = [d.model_copy(update={"text": text}) for d, text in zip(docs, clean, strict=True)]
    out = Prepared(source=source, title=docs[0].title if docs else "")
    key = source.key
    index = 0
    for doc in docs:
        for draft in splitter.split(doc):
            text = header_text(doc.title, draft.heading_path, draft.text) if header else draft.text
            meta: dict[str, Any] = {
                "source": doc.source,
                "title": doc.title,
                "heading": " > ".join(draft.heading_path),
                "heading_json": json.dumps(list(draft.heading_path), ensure_ascii=False),
                "chunk_index": index,
                "start": draft.start,
                "end": draft.end,
                "doc_key": key,
                "doc_hash": source.content_hash,
                "text_hash": hashlib.sha256(text.encode()).hexdigest()[:32],
            }
            if doc.page is not None:
                meta["page"] = doc.page
            if doc.record is not None:
                meta["record"] = doc.record
            if doc.modified is not None:
                meta["modified"] = doc.modified.isoformat()
            for name, value in doc.extra.items():
                meta[f"x_{name}" if name in STANDARD_KEYS else name] = value
            out.ids.append(f"{key[:16]}-{source.content_hash[:16]}-{index:05d}")
            out.bodies.append(draft.text)
            out.texts.append(text)
            out.metas.append(meta)
            index += 1
    return out


@dataclass
class _Batch:
    slices: list[tuple[Prepared, int, int]]
    vectors: Any = None


class Pipeline:
    """Runs the three stages over the sources to (re-)index; see the module docstring.

    ``on_indexed`` is called in the writer thread once a source's chunks are all stored
    (it records the source; an exception from it stops the ingestion, which is how a
    crash is simulated in tests). ``on_failed`` gets sources whose loading failed.
    """

    def __init__(
        self,
        *,
        store: ChunkStore,
        embedder: Embedder,
        splitter: Splitter,
        header: bool,
        redact: Redact | None,
        on_indexed: Callable[[Prepared], None],
        on_failed: Callable[[Source, str], None],
        on_chunks: Callable[[int], None] = lambda n: None,
        batch_size: int = 256,
        reuse_vectors: bool = True,
    ) -> None:
        self._store = store
        self._embedder = embedder
        self._splitter = splitter
        self._header = header
        self._redact = redact
        self._on_indexed = on_indexed
        self._on_failed = on_failed
        self._on_chunks = on_chunks
        self._batch_size = batch_size
        self._reuse = reuse_vectors
        self._stop = threading.Event()
        self._errors: list[BaseException] = []
        self.written = 0
        self.embedded = 0

    def run(self, sources: Sequence[Source]) -> None:
        # Loading and splitting run far ahead of the encoder (they are ~100x faster): done
        # in one burst at the start, they stop competing with PyTorch's threads for the
        # cores, which costs more than their own CPU time when they interleave.
        prepared: queue.Queue[Prepared | None] = queue.Queue(maxsize=_AHEAD)
        batches: queue.Queue[_Batch | None] = queue.Queue(maxsize=2)
        producer = threading.Thread(
            target=self._guard, args=(self._produce, sources, prepared), name="rag-load"
        )
        writer = threading.Thread(
            target=self._guard, args=(self._consume, batches), name="rag-write"
        )
        producer.start()
        writer.start()
        try:
            self._embed_loop(prepared, batches)
        except BaseException as error:
            self._fail(error)
        finally:
            self._put(batches, None, final=True)
            producer.join()
            writer.join()
        if self._errors:
            raise self._errors[0]

    # ------------------------------------------------------------------ plumbing

    def _fail(self, error: BaseException) -> None:
        self._errors.append(error)
        self._stop.set()

    def _guard(self, target: Callable[..., None], *args: Any) -> None:
        try:
            target(*args)
        except BaseException as error:
            self._fail(error)

    def _put(self, q: queue.Queue[T], item: T, *, final: bool = False) -> bool:
        while True:
            if self._stop.is_set() and not final:
                return False
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                if self._stop.is_set():
                    return False

    def _get(self, q: queue.Queue[T | None]) -> T | None:
        while not self._stop.is_set():
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                continue
        return None

    # ------------------------------------------------------------------ stages

    def _produce(self, sources: Sequence[Source], out: queue.Queue[Prepared | None]) -> None:
        try:
            for source in sources:
                if self._stop.is_set():
                    return
                try:
                    item = prepare(source, self._splitter, self._redact, self._header)
                except (GenAIError, OSError, ValueError, UnicodeError) as error:
                    item = Prepared(source=source, error=getattr(error, "message", str(error)))
                if not self._put(out, item):
                    return
        finally:
            self._put(out, None, final=True)

    def _embed_loop(
        self, incoming: queue.Queue[Prepared | None], out: queue.Queue[_Batch | None]
    ) -> None:
        pending: list[tuple[Prepared, int, int]] = []
        size = 0
        while True:
            item = self._get(incoming)
            if item is None:
                break
            if item.error is not None:
                self._on_failed(item.source, item.error)
                continue
            if not item.ids:
                pending.append((item, 0, 0))
                continue
            at = 0
            while at < len(item.ids):
                take = min(self._batch_size - size, len(item.ids) - at)
                pending.append((item, at, at + take))
                size += take
                at += take
                if size >= self._batch_size:
                    if not self._put(out, self._embed(pending)):
                        return
                    pending, size = [], 0
        if pending and not self._stop.is_set():
            self._put(out, self._embed(pending))

    def _embed(self, slices: list[tuple[Prepared, int, int]]) -> _Batch:
        import numpy as np

        texts = [t for prep, a, b in slices for t in prep.texts[a:b]]
        hashes = [str(m["text_hash"]) for prep, a, b in slices for m in prep.metas[a:b]]
        if not texts:
            return _Batch(slices)
        unique = list(dict.fromkeys(hashes))
        known = self._store.vectors_by_text_hash(unique) if self._reuse else {}
        missing = [h for h in unique if h not in known]
        if missing:
            first = {h: i for i, h in reversed(list(enumerate(hashes)))}
            fresh = self._embedder.embed([texts[first[h]] for h in missing])
            known.update(zip(missing, fresh, strict=True))
            self.embedded += len(missing)
        vectors: NDArray[np.float32] = np.asarray([known[h] for h in hashes], dtype=np.float32)
        return _Batch(slices, vectors)

    def _consume(self, incoming: queue.Queue[_Batch | None]) -> None:
        while True:
            batch = self._get(incoming)
            if batch is None:
                return
            ids = [i for prep, a, b in batch.slices for i in prep.ids[a:b]]
            if ids:
                self._store.upsert(
                    ids,
                    batch.vectors,
                    [d for prep, a, b in batch.slices for d in prep.bodies[a:b]],
                    [m for prep, a, b in batch.slices for m in prep.metas[a:b]],
                )
                self.written += len(ids)
                self._on_chunks(len(ids))
            for prep, a, b in batch.slices:
                prep.written += b - a
                if prep.written == len(prep.ids) and (b > a or not prep.ids):
                    self._finish(prep)

    def _finish(self, prep: Prepared) -> None:
        source = prep.source
        self._store.delete_where(
            {"$and": [{"doc_key": source.key}, {"doc_hash": {"$ne": source.content_hash}}]}
        )
        self._on_indexed(prep)
