"""The capability packages' tables: the DLP vault, the semantic cache, knowledge bases."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from genai.store.schema._base import Base, _created, _project_fk

__all__ = [
    "CacheCounter",
    "CacheEntry",
    "CacheEstimate",
    "CacheHit",
    "DlpVaultEntry",
    "KbAnswer",
    "KbDocument",
    "KnowledgeBase",
]


# --------------------------------------------------------------------------- dlp


class DlpVaultEntry(Base):
    """One pseudonym of a DLP vault session: ``token`` (``<EMAIL_ADDRESS_1>``'s inside) ↔ the
    original value, encrypted (AES-GCM, bound to its project, session and token).

    ``session`` is a keyed hash of the caller's session id, never the id itself; the value
    is found by ``value_mac`` (an HMAC of the entity type and value), never stored raw.
    """

    __tablename__ = "dlp_vault"
    __table_args__ = (
        Index("uq_dlp_vault_token", "project_id", "session_id", "token", unique=True),
        Index(
            "uq_dlp_vault_value",
            "project_id",
            "session_id",
            "entity_type",
            "value_mac",
            unique=True,
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    session_id: Mapped[str] = mapped_column(String(128))
    entity_type: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(Integer)
    token: Mapped[str] = mapped_column(String(96))
    value_mac: Mapped[str] = mapped_column(String(64))
    ciphertext: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()
    expires_at: Mapped[datetime] = mapped_column(index=True)


# --------------------------------------------------------------------------- cache


class CacheEntry(Base):
    """One answer of the semantic cache (``cache/``), stored as the gateway saw it after
    DLP (pseudonymised, never raw PII). ``vector`` is the question's embedding: small
    scopes are searched from here, busy ones from a vector-store collection of their own.

    ``exact_key`` and ``scope`` are hashes that start from the project and partition
    (deployment, revision, adapter, prompt version, sampling parameters, knowledge-base
    version); ``params`` is a hash too.
    """

    __tablename__ = "cache_entries"
    __table_args__ = (
        Index("uq_cache_entries_key", "project_id", "exact_key", unique=True),
        Index("ix_cache_entries_scope", "project_id", "scope"),
        Index("ix_cache_entries_deployment", "project_id", "deployment"),
        Index("ix_cache_entries_used", "project_id", "used_at"),
        Index("ix_cache_entries_request", "project_id", "request_id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    exact_key: Mapped[str] = mapped_column(String(32))
    scope: Mapped[str] = mapped_column(String(32))
    deployment: Mapped[str] = mapped_column(String(200))
    adapter: Mapped[str] = mapped_column(String(200), default="")
    prompt_version: Mapped[str] = mapped_column(String(200), default="")
    params: Mapped[str] = mapped_column(String(32), default="")
    kb_version: Mapped[str] = mapped_column(String(200), default="")
    revision: Mapped[str] = mapped_column(String(40), default="")
    question: Mapped[str | None] = mapped_column(Text, nullable=True)
    vector: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # float32
    answer: Mapped[Any] = mapped_column(JSON)
    request_id: Mapped[str] = mapped_column(String(64), default="")
    tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    hits: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = _created()
    used_at: Mapped[datetime] = _created()
    expires_at: Mapped[datetime | None] = mapped_column(nullable=True, index=True)


class CacheHit(Base):
    """Which cache entry answered which request: ``POST /v1/feedback`` on that request
    evicts the entry. Kept for a few days only. A semantic hit the pair verifier judged
    keeps its ``deployment`` and verifier ``score``: feedback (in any process) finds the
    error-bound block it counts against, and clears ``score`` so that it counts once."""

    __tablename__ = "cache_hits"
    __table_args__ = (Index("ix_cache_hits_request", "project_id", "request_id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    request_id: Mapped[str] = mapped_column(String(64))
    entry_id: Mapped[str] = mapped_column(String(32))
    ts: Mapped[datetime] = mapped_column(index=True)
    deployment: Mapped[str | None] = mapped_column(String(200), nullable=True)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)


class CacheCounter(Base):
    """A project's cache counters per deployment, summed over every gateway process."""

    __tablename__ = "cache_counters"

    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    deployment: Mapped[str] = mapped_column(String(200), primary_key=True)
    lookups: Mapped[int] = mapped_column(BigInteger, default=0)
    exact_hits: Mapped[int] = mapped_column(BigInteger, default=0)
    semantic_hits: Mapped[int] = mapped_column(BigInteger, default=0)
    tokens_saved: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_saved_usd: Mapped[float] = mapped_column(Float, default=0.0)
    false_hits: Mapped[int] = mapped_column(BigInteger, default=0)
    stores: Mapped[int] = mapped_column(BigInteger, default=0)
    evictions: Mapped[int] = mapped_column(BigInteger, default=0)


class CacheEstimate(Base):
    """A project's evidence on its semantic hits, per deployment and verifier-score block of
    a calibration curve (``cache/_bound.py``), summed over every gateway process with
    atomic increments: the online half of the error bound (``cache.max_error``).

    ``curve`` is a digest of the calibration curve the blocks belong to: a new verifier
    starts from its own calibration instead of inheriting blocks it did not define.
    ``hits`` are the semantic hits answered at this block (judged: they count as right
    unless labelled), ``estimated`` the sum of their estimated P(wrong) when answered;
    ``reported`` the ones ``POST /v1/feedback`` labelled wrong; ``rechecked`` the sampled
    hits re-asked of the model and ``recheck_wrong`` those whose fresh answer disagreed.
    """

    __tablename__ = "cache_estimates"

    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    deployment: Mapped[str] = mapped_column(String(200), primary_key=True)
    curve: Mapped[str] = mapped_column(String(32), primary_key=True)
    block: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    hits: Mapped[int] = mapped_column(BigInteger, default=0)
    estimated: Mapped[float] = mapped_column(Float, default=0.0)
    reported: Mapped[int] = mapped_column(BigInteger, default=0)
    rechecked: Mapped[int] = mapped_column(BigInteger, default=0)
    recheck_wrong: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = _created()


# --------------------------------------------------------------------------- rag


class KnowledgeBase(Base):
    """A project's knowledge base: its fixed configuration and its current state.

    ``collection`` is derived from the project's and this row's ids (never reused), so a
    knowledge base can only ever reach its own vectors. ``version`` is the registry dataset
    version of the latest ingestion (``dataset`` names it); ``bm25`` the artifact digest of
    the BM25 index built from the same chunks. ``lease_*`` is held by a running ingestion.
    """

    __tablename__ = "knowledge_bases"
    __table_args__ = (
        UniqueConstraint("project_id", "name"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = _project_fk()
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    embedding_model: Mapped[str] = mapped_column(String(500))
    dimension: Mapped[int] = mapped_column(Integer)
    splitter: Mapped[dict[str, Any]] = mapped_column(default=dict)
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    collection: Mapped[str] = mapped_column(String(200), default="")
    dataset: Mapped[str] = mapped_column(String(100))
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    bm25: Mapped[str] = mapped_column(String(64), default="")
    documents: Mapped[int] = mapped_column(Integer, default=0)
    chunks: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str] = mapped_column(String(200), default="")
    lease_until: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = _created()
    created_by: Mapped[str] = mapped_column(String(120))
    updated_at: Mapped[datetime | None] = mapped_column(nullable=True)


class KbDocument(Base):
    """One ingested source of a knowledge base: the hash its chunks were made from.

    Written only after every chunk of that content is in the vector store, so after a
    crash a re-run redoes exactly the sources whose hash differs from this record.
    """

    __tablename__ = "kb_documents"

    kb_id: Mapped[int] = mapped_column(
        ForeignKey("knowledge_bases.id", ondelete="CASCADE"), primary_key=True
    )
    source_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[int] = _project_fk()
    source: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(Text, default="")
    chunks: Mapped[int] = mapped_column(Integer, default=0)
    modified_at: Mapped[datetime | None] = mapped_column(nullable=True)
    indexed_at: Mapped[datetime] = _created()


class KbAnswer(Base):
    """What one knowledge-bot answer was built from: the knowledge-base version, the
    prompt version and the chunks it was given and cited (never the question's text: it
    may hold personal data). Written by the gateway's knowledge bot off the request path.
    """

    __tablename__ = "kb_answers"
    __table_args__ = (Index("ix_kb_answers_project_request", "project_id", "request_id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    ts: Mapped[datetime] = _created()
    request_id: Mapped[str] = mapped_column(String(64))
    deployment: Mapped[str] = mapped_column(String(200))
    kb_name: Mapped[str] = mapped_column(String(100), index=True)
    kb_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    prompt_version: Mapped[str] = mapped_column(String(200), default="")
    chunks: Mapped[list[Any]] = mapped_column(JSON, default=list)  # [{id, source, score}]
    cited: Mapped[list[Any]] = mapped_column(JSON, default=list)  # the [n] the answer cites
