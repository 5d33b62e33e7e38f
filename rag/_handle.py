"""One knowledge base: ingest sources, retrieve chunks, answer with citations."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from genai.tenancy import Action
from rag._chroma import ChunkStore
from rag._ingest import document_sources, file_sources
from rag._loaders import DEFAULT_EXCLUDE, Loader, collect_files
from rag._ranking import Fusion, Reranker
from rag._retrieve import DEFAULTS, search
from rag._sparse import load_sparse
from rag._sync import run_ingestion
from rag._types import (
    Chunk,
    Document,
    FilterValue,
    IngestReport,
    KnowledgeBaseInfo,
    SearchMode,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from rag._ingest import Redact
    from rag._kb import KnowledgeBases, Snapshot
    from rag._splitters import Splitter

__all__ = ["Answer", "Citation", "KnowledgeBase"]

_MARK = re.compile(r"\[(\d+)\]")


class Citation(BaseModel):
    """A retrieved chunk the answer quotes; ``number`` is its ``[n]`` in the answer."""

    number: int
    chunk: Chunk

    @property
    def label(self) -> str:
        return self.chunk.metadata.citation


class Answer(BaseModel):
    """An answer to a question, the chunks it cites, and every chunk it was given."""

    question: str
    text: str
    citations: list[Citation] = Field(default_factory=list)
    chunks: list[Chunk] = Field(default_factory=list)
    kb_version: int | None = None


class KnowledgeBase:
    """A handle on one knowledge base of one project; every call authorizes anew.

    Get one from :meth:`rag.KnowledgeBases.get` or :meth:`~rag.KnowledgeBases.create`.
    """

    def __init__(self, kbs: KnowledgeBases, project: str, name: str) -> None:
        self._kbs = kbs
        self.project = project
        self.name = name

    def __repr__(self) -> str:
        return f"<KnowledgeBase {self.project}/{self.name}>"

    @property
    def info(self) -> KnowledgeBaseInfo:
        return self._kbs.info(self.project, self.name)

    @property
    def version(self) -> int | None:
        """The registry dataset version of the latest ingestion (None before the first).

        Equal versions mean equal indexed content and configuration, so caches key on it.
        """
        return self._snap(Action.REGISTRY_READ).version

    def _snap(self, action: Action) -> Snapshot:
        return self._kbs.snapshot(self.project, self.name, action)

    # ------------------------------------------------------------------ ingestion

    def ingest(
        self,
        paths: Iterable[str | Path],
        *,
        include: Sequence[str] = (),
        exclude: Sequence[str] = DEFAULT_EXCLUDE,
        delete_missing: bool = True,
        loaders: dict[str, Loader] | None = None,
        splitter: Splitter | None = None,
        progress: bool = False,
        on_indexed: Callable[[str], None] | None = None,
        batch_size: int = 256,
    ) -> IngestReport:
        """Sync files and folders into the knowledge base (developer).

        New and changed files are indexed, unchanged ones skipped; with
        ``delete_missing``, files recorded under a given folder (or a given file) that no
        longer exist are deleted. ``include``/``exclude`` are globs relative to each
        folder. ``loaders`` maps suffixes to loaders for this call (a
        :class:`~rag.LlamaIndexLoader` for instance). ``on_indexed(source)`` runs after each
        source is recorded. Safe to interrupt: a re-run resumes without duplicates.
        """
        snap = self._snap(Action.REGISTRY_WRITE)
        files, roots = collect_files(paths, include=include, exclude=exclude, loaders=loaders)
        sources = file_sources(files, loaders)

        def in_scope(source: str) -> bool:
            path = Path(source)
            return any(path == root or root in path.parents for root in roots)

        return run_ingestion(
            self._kbs,
            snap,
            sources,
            in_scope=in_scope if delete_missing else None,
            splitter=splitter,
            redact=self._redactor(snap),
            progress=progress,
            on_indexed=on_indexed,
            batch_size=batch_size,
        )

    def ingest_documents(
        self,
        documents: Iterable[Document],
        *,
        splitter: Splitter | None = None,
        progress: bool = False,
        on_indexed: Callable[[str], None] | None = None,
        batch_size: int = 256,
    ) -> IngestReport:
        """Index documents built in code (developer); a source's documents replace what was
        indexed under that source before, and sources not given are left alone."""
        snap = self._snap(Action.REGISTRY_WRITE)
        return run_ingestion(
            self._kbs,
            snap,
            document_sources(documents),
            in_scope=None,
            splitter=splitter,
            redact=self._redactor(snap),
            progress=progress,
            on_indexed=on_indexed,
            batch_size=batch_size,
        )

    def remove_sources(self, sources: Iterable[str]) -> IngestReport:
        """Delete the chunks and records of these sources (developer)."""
        snap = self._snap(Action.REGISTRY_WRITE)
        wanted = {str(s) for s in sources}
        return run_ingestion(self._kbs, snap, [], in_scope=lambda source: source in wanted)

    def rebuild_sparse(self) -> None:
        """Rebuild the BM25 index from the stored chunks with the current BM25 parameters
        (developer). Ingestion does this whenever content changes; call it after an
        upgrade that changed the parameters."""
        from rag._sync import rebuild_sparse

        rebuild_sparse(self._kbs, self._snap(Action.REGISTRY_WRITE))

    def _redactor(self, snap: Snapshot) -> Redact | None:
        if not snap.options.get("redact"):
            return None
        if self._kbs.redactor is not None:
            return self._kbs.redactor
        from rag._dlp import project_redactor

        return project_redactor(
            self._kbs.client, snap.project, snap.project_id, detectors=self._kbs.detectors()
        )

    # ------------------------------------------------------------------ retrieval

    def retrieve(
        self,
        query: str,
        k: int = 5,
        filters: Mapping[str, FilterValue] | None = None,
        mode: SearchMode | str | None = None,
        *,
        rerank: bool | Reranker = False,
        mmr: float | None = None,
        fetch_k: int | None = None,
        fusion: Fusion | None = None,
        dense_weight: float | None = None,
    ) -> list[Chunk]:
        """The ``k`` chunks that best answer ``query`` (viewer).

        ``mode``: ``"hybrid"`` (default: dense and BM25 scores min-max normalised and
        averaged; ``fusion="rrf"`` for reciprocal-rank fusion),
        ``"dense"`` or ``"sparse"``. ``filters``: metadata conditions (see
        :mod:`rag._filters`). ``mmr``: a diversity in [0, 1] for maximal marginal
        relevance over the candidates. ``rerank``: True for the configured reranker, or a
        :class:`Reranker`. ``fetch_k``: candidates per retriever before fusion.
        """
        snap = self._snap(Action.REGISTRY_READ)
        reranker: Reranker | None = None
        if rerank is True:
            reranker = self._kbs.reranker_for(snap)
            if reranker is None:
                from genai.errors import ConfigError

                raise ConfigError(
                    f"knowledge base {self.name!r} has no reranker: create it with "
                    "reranker=PATH (a local cross-encoder) or pass rerank=<Reranker>"
                )
        elif rerank is not False:
            reranker = rerank
        chosen = SearchMode(mode) if mode is not None else DEFAULTS.mode
        if snap.version is None and not snap.bm25:
            return []
        sparse = (
            load_sparse(snap.bm25, self._kbs.client.registry.artifacts, self._kbs.sparse)
            if snap.bm25 and chosen is not SearchMode.DENSE
            else None
        )
        return search(
            query,
            k=k,
            store=ChunkStore(self._kbs.chroma(), snap.collection),
            sparse=sparse,
            embedder=self._kbs.embedder(snap.embedding_model),
            filters=filters,
            mode=chosen,
            fusion=fusion or DEFAULTS.fusion,
            dense_weight=DEFAULTS.dense_weight if dense_weight is None else dense_weight,
            fetch_k=fetch_k,
            diversity=mmr,
            reranker=reranker,
        )

    # ------------------------------------------------------------------ answers

    def ask(
        self,
        question: str,
        k: int = 4,
        filters: Mapping[str, FilterValue] | None = None,
        mode: SearchMode | str | None = None,
    ) -> Answer:
        """Retrieve, then answer by quoting the retrieved sentences closest to the question
        (the ``extractive`` backend: no generative model), citing chunks as ``[n]``."""
        return asyncio.run(self.aask(question, k, filters, mode))

    async def aask(
        self,
        question: str,
        k: int = 4,
        filters: Mapping[str, FilterValue] | None = None,
        mode: SearchMode | str | None = None,
    ) -> Answer:
        from genai.models import ContextPassage, ExtractiveBackend, GenerationRequest

        snap = await asyncio.to_thread(self._snap, Action.REGISTRY_READ)
        chunks = await asyncio.to_thread(self.retrieve, question, k, filters, mode)
        if not chunks:
            return Answer(
                question=question,
                text="The knowledge base has nothing on this question.",
                kb_version=snap.version,
            )
        backend = ExtractiveBackend(embedder=self._kbs.embedder(snap.embedding_model))
        generation = await backend.generate(
            GenerationRequest(
                prompt=question,
                context=[ContextPassage(id=str(n), text=c.text) for n, c in enumerate(chunks, 1)],
            )
        )
        cited = sorted(
            {int(m) for m in _MARK.findall(generation.text) if 0 < int(m) <= len(chunks)}
        )
        return Answer(
            question=question,
            text=generation.text,
            citations=[Citation(number=n, chunk=chunks[n - 1]) for n in cited],
            chunks=chunks,
            kb_version=snap.version,
        )
