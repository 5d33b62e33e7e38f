"""One ingestion of a knowledge base: claim it, diff the sources against their records,
run the pipeline, delete removed sources, rebuild BM25, register the dataset version.

Unchanged sources (same content hash as recorded) are skipped without being loaded;
changed and new ones go through :class:`rag._ingest.Pipeline`; recorded sources inside the
ingestion's scope (under a folder it was given) that are gone are deleted. Each ingestion
ends as a version of the registry dataset ``kb-<name>``: one row per indexed source
(source, content hash, chunk count) plus the knowledge base's configuration, so the same
content is the same version, and that version is what caches key on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from genai.store import schema as t
from rag._chroma import ChunkStore
from rag._ingest import Pipeline, Prepared, Source, header_text
from rag._progress import IngestProgress
from rag._records import Lease, forget_sources, record_source, source_records
from rag._sparse import SparseIndex, save_sparse
from rag._splitters import Splitter, TextSplitter
from rag._types import IngestReport

if TYPE_CHECKING:
    from rag._ingest import Redact
    from rag._kb import KnowledgeBases, Snapshot

__all__ = ["rebuild_sparse", "run_ingestion"]

log = logging.getLogger("rag.ingest")


def run_ingestion(
    kbs: KnowledgeBases,
    snap: Snapshot,
    sources: Sequence[Source],
    *,
    in_scope: Callable[[str], bool] | None,
    splitter: Splitter | None = None,
    redact: Redact | None = None,
    progress: bool = False,
    on_indexed: Callable[[str], None] | None = None,
    batch_size: int = 256,
) -> IngestReport:
    """Sync the knowledge base with ``sources``; see the module docstring."""
    started = time.perf_counter()
    store = kbs.client.store
    report = IngestReport()
    lease = Lease(store, snap.kb_id, snap.name)
    lease.acquire()
    try:
        chunks = ChunkStore(kbs.chroma(), snap.collection, create=True)
        records = source_records(store, snap.kb_id)
        if records and chunks.count() == 0:
            log.warning(
                "collection %s is empty but %d sources are recorded: re-indexing all",
                snap.collection,
                len(records),
            )
            with store.session() as s:
                forget_sources(s, snap.kb_id, list(records))
            records = {}
        seen = {src.key for src in sources}
        todo = []
        for src in sources:
            record = records.get(src.key)
            if record is not None and record.content_hash == src.content_hash:
                report.unchanged.append(src.source)
            else:
                todo.append(src)
        removed = [
            (key, rec.source)
            for key, rec in records.items()
            if key not in seen and in_scope is not None and in_scope(rec.source)
        ]

        def indexed(prep: Prepared) -> None:
            with store.session() as s:
                record_source(
                    s,
                    snap.kb_id,
                    snap.project_id,
                    prep.source.key,
                    source=prep.source.source,
                    content_hash=prep.source.content_hash,
                    title=prep.title,
                    chunks=len(prep.ids),
                    modified=prep.source.modified,
                )
                lease.renew(s)
            (report.updated if prep.source.key in records else report.added).append(
                prep.source.source
            )
            bar.source_done()
            if on_indexed is not None:
                on_indexed(prep.source.source)

        def failed(source: Source, why: str) -> None:
            report.failed[source.source] = why
            bar.source_done()

        model = snap.embedding_model
        with IngestProgress(
            enabled=progress and bool(todo),
            total_sources=len(todo),
            title=f"{snap.project}/{snap.name}",
        ) as bar:
            pipeline = Pipeline(
                store=chunks,
                embedder=kbs.embedder(model),
                splitter=splitter or TextSplitter(snap.splitter, kbs.counter(model)),
                header=snap.splitter.contextual_header,
                redact=redact,
                on_indexed=indexed,
                on_failed=failed,
                on_chunks=bar.chunks,
                batch_size=batch_size,
                reuse_vectors=bool(records) or chunks.count() > 0,
            )
            if todo:
                pipeline.run(todo)
        report.chunks_written = pipeline.written
        report.chunks_embedded = pipeline.embedded
        for key, source in removed:
            report.chunks_deleted += chunks.delete_where({"doc_key": key})
            with store.session() as s:
                forget_sources(s, snap.kb_id, [key])
                lease.renew(s, every=0)
            report.deleted.append(source)
        report.version = _register(kbs, snap)
        bm25 = snap.bm25
        # A version other than the row's means sources changed since the last completed
        # ingestion (possibly by one that crashed after recording them): rebuild BM25 too.
        if report.changed or not bm25 or report.version != snap.version:
            bm25 = _rebuild_sparse(kbs, snap, chunks)
        _finish(kbs, snap, report, bm25=bm25, total=chunks.count())
    finally:
        lease.release()
    kbs.tidy()
    report.status = "partial" if report.failed else "ok"
    report.seconds = time.perf_counter() - started
    return report


def rebuild_sparse(kbs: KnowledgeBases, snap: Snapshot) -> str:
    """Rebuild the BM25 index from the stored chunks with the current parameters (after an
    upgrade that changed them); the content, hence the version, stays the same."""
    lease = Lease(kbs.client.store, snap.kb_id, snap.name)
    lease.acquire()
    try:
        digest = _rebuild_sparse(kbs, snap, ChunkStore(kbs.chroma(), snap.collection, create=True))
        with kbs.client.store.session() as s:
            row = s.get(t.KnowledgeBase, snap.kb_id)
            if row is not None:
                row.bm25 = digest
        return digest
    finally:
        lease.release()


def _rebuild_sparse(kbs: KnowledgeBases, snap: Snapshot, chunks: ChunkStore) -> str:
    """BM25 over every chunk now in the collection; returns the artifact digest."""
    import json

    ids: list[str] = []
    bodies: list[str] = []
    texts: list[str] = []
    metas: list[dict[str, Any]] = []
    header = snap.splitter.contextual_header
    for page_ids, page_docs, page_metas in chunks.scan():
        for chunk_id, body, meta in zip(page_ids, page_docs, page_metas, strict=True):
            ids.append(chunk_id)
            bodies.append(body or "")
            metas.append(meta)
            path = json.loads(str(meta.get("heading_json") or "[]"))
            texts.append(header_text(str(meta.get("title", "")), path, body) if header else body)
    index = SparseIndex.build(ids, texts, bodies, metas)
    return save_sparse(index, kbs.client.registry.artifacts, kbs.sparse)


def _register(kbs: KnowledgeBases, snap: Snapshot) -> int:
    """The dataset version for the sources now recorded (the same content → same version)."""
    records = source_records(kbs.client.store, snap.kb_id)
    config = snap.fingerprint
    rows: list[dict[str, Any]] = [
        {
            "source": rec.source,
            "sha256": rec.content_hash,
            "chunks": rec.chunks,
            "title": rec.title,
            "config": config,
        }
        for rec in sorted(records.values(), key=lambda r: r.source)
    ] or [{"source": "", "sha256": "", "chunks": 0, "title": "", "config": config}]
    info = kbs.client.registry.datasets.register(
        snap.project,
        snap.dataset,
        rows,
        description=f"ingestion manifest of knowledge base {snap.name}",
    )
    return info.version


def _finish(
    kbs: KnowledgeBases, snap: Snapshot, report: IngestReport, *, bm25: str, total: int
) -> None:
    with kbs.client.store.session() as s:
        row = s.get(t.KnowledgeBase, snap.kb_id)
        if row is None:
            return
        row.version = report.version
        row.bm25 = bm25
        row.chunks = total
        row.documents = len(source_records_in(s, snap.kb_id))
        row.updated_at = t.utcnow()
        proj = s.get(t.Project, snap.project_id)
        kbs._ctx.audit(
            s,
            snap.principal,
            "kb.ingest",
            project=proj,
            resource=f"kb:{snap.name}@{report.version}",
            added=len(report.added),
            updated=len(report.updated),
            deleted=len(report.deleted),
            unchanged=len(report.unchanged),
            failed=len(report.failed),
        )


def source_records_in(session: Any, kb_id: int) -> list[str]:
    from sqlalchemy import select

    return list(
        session.scalars(select(t.KbDocument.source_key).where(t.KbDocument.kb_id == kb_id)).all()
    )
