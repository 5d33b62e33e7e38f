"""Knowledge bases of AI Projects: create, list, show, delete; a handle to ingest and ask.

Every call authorizes the client's principal in the project it names, inside the same
transaction that reads the knowledge base: viewers list, show and retrieve
(``registry:read``), developers create and ingest (``registry:write``), maintainers
delete. A principal outside the project learns nothing, not even whether a knowledge base
of that name exists (the project is "not found").
"""

from __future__ import annotations

import builtins
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from genai.errors import ConflictError, Forbidden, ValidationError
from genai.store import schema as t
from genai.tenancy import Action
from genai.vectors import ChromaVectorStore
from rag._chroma import ChunkStore, chroma_client, collection_name, drop_collection
from rag._records import find_kb
from rag._sparse import SparseCache
from rag._tokens import TokenCounter, model_directory
from rag._types import AnswerTrace, KnowledgeBaseInfo, SplitterConfig

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from genai import Client
    from genai.dlp import Detectors
    from genai.models import Embedder
    from genai.tenancy import Principal
    from rag._handle import KnowledgeBase
    from rag._ingest import Redact
    from rag._ranking import Reranker

__all__ = ["KnowledgeBases", "Snapshot"]

_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9])?")
DATASET_PREFIX = "kb-"
#: Texts per forward pass. On CPU, small batches of ~200-token chunks ran 15-20% faster
#: than 64 (less padding, better cache use; bench/ingestion_throughput.py, 2 cores).
EMBED_BATCH = 16
#: At most how often (per process) a knowledge-base write also drops the collections of
#: deleted projects.
TIDY_EVERY_S = 60.0


@dataclass
class _Tidy:
    """When this process last dropped the collections of deleted projects."""

    at: float = float("-inf")


def check_kb_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValidationError(
            f"invalid knowledge base name {name!r}: use 1-64 letters, digits, '.', '_' or "
            "'-', starting and ending with a letter or digit (e.g. 'support-docs')",
            field="name",
        )
    return name


@dataclass(frozen=True)
class Snapshot:
    """A knowledge base row as one authorized call read it."""

    project_id: int
    project: str
    kb_id: int
    name: str
    collection: str
    embedding_model: str
    splitter: SplitterConfig
    options: dict[str, Any]
    dataset: str
    version: int | None
    bm25: str
    principal: Principal

    @property
    def fingerprint(self) -> str:
        """What the chunks depend on besides the sources (in every dataset row)."""
        return json.dumps(
            {
                "kb_id": self.kb_id,
                "model": self.embedding_model,
                "splitter": self.splitter.model_dump(),
                "redact": bool(self.options.get("redact")),
            },
            sort_keys=True,
        )


class KnowledgeBases:
    """The knowledge bases of every project the client may see.

    ``embedder`` replaces the one built from settings (share one between services to load
    the model once); ``reranker`` is used when ``retrieve(rerank=True)``, else a knowledge
    base created with ``reranker=PATH`` gets a cross-encoder from that path; ``redactor``
    replaces the project's DLP policy for knowledge bases created with ``redact=True``,
    whose DLP detectors are kept in ``detectors`` (share an app's to load them once).
    Loaded BM25 indexes are kept in :attr:`sparse`.
    """

    def __init__(
        self,
        client: Client,
        *,
        embedder: Embedder | None = None,
        reranker: Reranker | None = None,
        redactor: Redact | None = None,
        chroma: Any = None,
        detectors: Detectors | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._clock = clock  # when to tidy again (injectable for tests)
        self._ctx = client.context
        self.settings = client.settings
        self._embedders: dict[str, Embedder] = {}
        self._counters: dict[str, TokenCounter] = {}
        self._rerankers: dict[str, Reranker] = {}
        if embedder is not None:
            name = embedder.model_name
            self._embedders[name.lower()] = embedder
        self.reranker = reranker
        self.redactor = redactor
        self._chroma = chroma
        self._detectors = detectors
        self.sparse = SparseCache()
        self._lock = threading.Lock()
        self._tidy = _Tidy()

    def for_client(self, client: Client) -> KnowledgeBases:
        """The same knowledge bases as ``client``'s principal sees them, sharing this
        object's embedding models, token counters, rerankers, BM25 indexes, DLP detectors
        and Chroma client (a server answering many callers loads each model once)."""
        other = KnowledgeBases(
            client,
            reranker=self.reranker,
            redactor=self.redactor,
            chroma=self.chroma(),
            detectors=self.detectors(),
            clock=self._clock,
        )
        other.sparse = self.sparse
        other._embedders, other._counters, other._rerankers = (
            self._embedders,
            self._counters,
            self._rerankers,
        )
        other._lock, other._tidy = self._lock, self._tidy
        return other

    # ------------------------------------------------------------------ shared parts

    @property
    def client(self) -> Client:
        return self._client

    def chroma(self) -> Any:
        with self._lock:
            if self._chroma is None:
                self._chroma = chroma_client(self.settings)
            return self._chroma

    def detectors(self) -> Detectors:
        """The DLP detectors of ingestion with ``redact=True`` (each loaded once)."""
        with self._lock:
            if self._detectors is None:
                from genai.dlp import Detectors

                self._detectors = Detectors()
            return self._detectors

    def embedder(self, model: str) -> Embedder:
        from genai.models import SentenceTransformerEmbedder

        with self._lock:
            found = self._embedders.get(model.lower())
            if found is None:
                found = SentenceTransformerEmbedder(model, batch_size=EMBED_BATCH)
                self._embedders[model.lower()] = found
            return found

    def counter(self, model: str) -> TokenCounter:
        with self._lock:
            if model not in self._counters:
                self._counters[model] = TokenCounter(model)
            return self._counters[model]

    def reranker_for(self, snap: Snapshot) -> Reranker | None:
        if self.reranker is not None:
            return self.reranker
        path = snap.options.get("reranker")
        if not path:
            return None
        from rag._ranking import CrossEncoderReranker

        with self._lock:
            if path not in self._rerankers:
                self._rerankers[path] = CrossEncoderReranker(path)
            return self._rerankers[path]

    # ------------------------------------------------------------------ authorization

    def snapshot(self, project: str, name: str, action: Action) -> Snapshot:
        with self._ctx.store.session() as s:
            me, proj = self._authorized(s, project, action)
            return _snapshot(find_kb(s, proj, name), proj, me)

    def _authorized(self, s: Session, project: str, action: Action) -> tuple[Principal, t.Project]:
        me = self._ctx.me(s)
        return me, self._ctx.project(s, me, project, action)

    # ------------------------------------------------------------------ commands

    def create(
        self,
        project: str,
        name: str,
        *,
        description: str = "",
        splitter: SplitterConfig | None = None,
        embedding_model: str | None = None,
        reranker: str | None = None,
        redact: bool = False,
        exist_ok: bool = False,
    ) -> KnowledgeBase:
        """A new knowledge base (developer). Its embedding model (default: the settings')
        and splitter are fixed for its life: changing them means a new knowledge base."""
        from rag._handle import KnowledgeBase

        check_kb_name(name)
        config = splitter or SplitterConfig()
        model = embedding_model or self.settings.embedding_model
        counter = self.counter(model)  # checks the model directory exists
        from rag._splitters import TextSplitter

        TextSplitter(config, counter)  # checks sizes against the model's window
        if reranker is not None:
            from rag._ranking import CrossEncoderReranker

            reranker = str(CrossEncoderReranker(reranker).path.resolve())
        dimension = _dimension(model, self)
        with self._ctx.store.session() as s:
            me, proj = self._authorized(s, project, Action.REGISTRY_WRITE)
            existing = s.scalars(
                select(t.KnowledgeBase).where(
                    t.KnowledgeBase.project_id == proj.id, t.KnowledgeBase.name == name
                )
            ).one_or_none()
            if existing is not None:
                if exist_ok:
                    return KnowledgeBase(self, project, name)
                raise ConflictError(
                    f"knowledge base {name!r} already exists in project {project!r}: ingest "
                    f"into it, or delete it first (`genai kb delete -p {project} {name}`)"
                )
            row = t.KnowledgeBase(
                project_id=proj.id,
                name=name,
                description=description,
                embedding_model=model,
                dimension=dimension,
                splitter=config.model_dump(),
                options={"reranker": reranker, "redact": redact},
                dataset=f"{DATASET_PREFIX}{name}",
                created_by=me.label,
            )
            s.add(row)
            s.flush()
            row.collection = collection_name(proj.id, row.id)
            ChunkStore(self.chroma(), row.collection, create=True)
            self._ctx.audit(s, me, "kb.create", project=proj, resource=f"kb:{name}", model=model)
        self.tidy()
        return KnowledgeBase(self, project, name)

    def get(self, project: str, name: str) -> KnowledgeBase:
        """A handle on an existing knowledge base (viewer)."""
        from rag._handle import KnowledgeBase

        self.snapshot(project, name, Action.REGISTRY_READ)
        return KnowledgeBase(self, project, name)

    def info(self, project: str, name: str) -> KnowledgeBaseInfo:
        with self._ctx.store.session() as s:
            _, proj = self._authorized(s, project, Action.REGISTRY_READ)
            return _info(find_kb(s, proj, name), proj)

    def list(self, project: str) -> builtins.list[KnowledgeBaseInfo]:
        """The project's knowledge bases, by name (viewer)."""
        with self._ctx.store.session() as s:
            _, proj = self._authorized(s, project, Action.REGISTRY_READ)
            rows = s.scalars(
                select(t.KnowledgeBase)
                .where(t.KnowledgeBase.project_id == proj.id)
                .order_by(t.KnowledgeBase.name)
            ).all()
            return [_info(row, proj) for row in rows]

    def delete(self, project: str, name: str) -> None:
        """Delete a knowledge base, its vectors and its source records (maintainer).
        Its dataset versions stay in the registry, as lineage."""
        with self._ctx.store.session() as s:
            me, proj = self._authorized(s, project, Action.KB_DELETE)
            row = find_kb(s, proj, name, lock=True)
            collection = row.collection
            s.delete(row)
            s.flush()
            drop_collection(self.chroma(), collection)
            self._ctx.audit(s, me, "kb.delete", project=proj, resource=f"kb:{name}")
        self.tidy()

    def answers(
        self,
        project: str,
        name: str | None = None,
        *,
        request_id: str | None = None,
        limit: int = 50,
    ) -> builtins.list[AnswerTrace]:
        """What the project's knowledge-bot answers were built from, newest first (viewer):
        the knowledge-base and prompt versions and the chunks given and cited; ``name``
        and ``request_id`` (the gateway's ``x-request-id``) narrow it."""
        with self._ctx.store.session() as s:
            _, proj = self._authorized(s, project, Action.REGISTRY_READ)
            query = select(t.KbAnswer).where(t.KbAnswer.project_id == proj.id)
            if name is not None:
                query = query.where(t.KbAnswer.kb_name == name)
            if request_id is not None:
                query = query.where(t.KbAnswer.request_id == request_id)
            rows = s.scalars(query.order_by(t.KbAnswer.id.desc()).limit(limit)).all()
            return [AnswerTrace.model_validate(row, from_attributes=True) for row in rows]

    def purge_orphaned_collections(self) -> builtins.list[str]:
        """Drop ``kb-<project>-<kb>`` collections whose knowledge base no longer exists
        (platform admins only): the names dropped. Those of a deleted project also go by
        themselves (see :meth:`tidy`); this catches any left by a failed call."""
        with self._ctx.store.session() as s:
            me = self._ctx.me(s)
            if not me.is_admin:
                raise Forbidden(f"{me.label} may not purge collections: only platform admins may")
        names = self._kb_collections()
        with self._ctx.store.session() as s:
            live = set(s.scalars(select(t.KnowledgeBase.collection)).all())
        return self._drop([name for name, _ in names if name not in live])

    def tidy(self) -> builtins.list[str]:
        """Drop the collections of deleted projects (the names dropped), at most once a
        minute per process; knowledge-base writes call it. Deleting a project removes its
        knowledge-base rows in the database (cascade), which cannot reach Chroma.

        Collections are listed before the projects are read: a collection exists only once
        its project does, so one whose project is missing afterwards is a deleted
        project's (ids are never reused)."""
        now = self._clock()
        with self._lock:
            if now - self._tidy.at < TIDY_EVERY_S:
                return []
            self._tidy.at = now
        names = self._kb_collections()
        if not names:
            return []
        with self._ctx.store.session() as s:
            live = set(s.scalars(select(t.Project.id)).all())
        return self._drop([name for name, project in names if project not in live])

    def _kb_collections(self) -> builtins.list[tuple[str, int]]:
        """The ``kb-<project>-<kb>`` collections in Chroma, with their project ids."""
        found = []
        for name in ChromaVectorStore(client=self.chroma()).collections("kb-"):
            parts = name.split("-")
            if len(parts) == 3 and parts[0] == "kb" and all(p.isdigit() for p in parts[1:]):
                found.append((name, int(parts[1])))
        return found

    def _drop(self, names: builtins.list[str]) -> builtins.list[str]:
        for name in names:
            drop_collection(self.chroma(), name)
        return names


def _dimension(model: str, kbs: KnowledgeBases) -> int:
    """The embedding size, from the model's pooling config when it has no Dense layer
    (no model load); otherwise by loading the model."""
    try:
        directory = model_directory(model)
        modules = json.loads((directory / "modules.json").read_text(encoding="utf-8"))
        kinds = [str(m.get("type", "")) for m in modules]
        pooling = next((m for m in modules if str(m.get("type", "")).endswith("Pooling")), None)
        if pooling is not None and not any(k.endswith("Dense") for k in kinds):
            config = json.loads(
                (directory / pooling["path"] / "config.json").read_text(encoding="utf-8")
            )
            return int(config["word_embedding_dimension"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return int(kbs.embedder(model).dimension)


def _snapshot(row: t.KnowledgeBase, proj: t.Project, me: Principal) -> Snapshot:
    return Snapshot(
        project_id=proj.id,
        project=proj.name,
        kb_id=row.id,
        name=row.name,
        collection=row.collection,
        embedding_model=row.embedding_model,
        splitter=SplitterConfig(**row.splitter),
        options=dict(row.options or {}),
        dataset=row.dataset,
        version=row.version,
        bm25=row.bm25,
        principal=me,
    )


def _info(row: t.KnowledgeBase, proj: t.Project) -> KnowledgeBaseInfo:
    options = dict(row.options or {})
    return KnowledgeBaseInfo(
        project=proj.name,
        name=row.name,
        description=row.description,
        embedding_model=row.embedding_model,
        dimension=row.dimension,
        splitter=SplitterConfig(**row.splitter),
        reranker=options.get("reranker"),
        redact=bool(options.get("redact")),
        collection=row.collection,
        version=row.version,
        dataset=row.dataset,
        documents=row.documents,
        chunks=row.chunks,
        created_at=row.created_at,
        created_by=row.created_by,
        updated_at=row.updated_at,
    )
