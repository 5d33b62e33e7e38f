"""The metadata store's tables (SQLAlchemy 2 declarative).

Every table that holds a tenant's data carries ``project_id`` with ``ON DELETE CASCADE``:
deleting a project deletes everything of it, in one transaction. The audit log is the
exception: it outlives the project it speaks of.

Alembic migrations under ``migrations/versions`` must produce exactly these tables; a test
compares them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

__all__ = [
    "Adapter",
    "Alias",
    "AliasEvent",
    "ApiKey",
    "AuditEvent",
    "Base",
    "CacheCounter",
    "CacheEntry",
    "CacheHit",
    "Counter",
    "Dataset",
    "Deployment",
    "DlpVaultEntry",
    "EvalRun",
    "Feedback",
    "KbDocument",
    "KnowledgeBase",
    "LineageEdge",
    "Membership",
    "Model",
    "Principal",
    "Project",
    "PromptVersion",
    "Quota",
    "Run",
    "RunMetric",
    "ShadowResult",
    "UsageRecord",
    "utcnow",
]

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite drops zones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass a timezone-aware one")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


def _project_fk() -> Mapped[int]:
    return mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)


def _created() -> Mapped[datetime]:
    return mapped_column(default=utcnow)


# --------------------------------------------------------------------------- tenancy


class Project(Base):
    __tablename__ = "projects"
    # Never reuse a deleted project's id: the audit log and quota counters keep it.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = _created()
    created_by: Mapped[str] = mapped_column(String(100))


class Principal(Base):
    """A user (platform-wide) or a service account (belongs to one project)."""

    __tablename__ = "principals"
    __table_args__ = (
        Index(
            "uq_principals_user_name",
            "name",
            unique=True,
            sqlite_where=text("kind = 'user'"),
            postgresql_where=text("kind = 'user'"),
        ),
        Index(
            "uq_principals_service_name",
            "project_id",
            "name",
            unique=True,
            sqlite_where=text("kind = 'service'"),
            postgresql_where=text("kind = 'service'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))
    name: Mapped[str] = mapped_column(String(100))
    project_id: Mapped[int | None] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), nullable=True
    )
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = _created()


class Membership(Base):
    __tablename__ = "memberships"

    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    principal_id: Mapped[int] = mapped_column(
        ForeignKey("principals.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    role: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = _created()


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = _project_fk()
    principal_id: Mapped[int] = mapped_column(ForeignKey("principals.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    salt: Mapped[str] = mapped_column(String(32))
    digest: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = _created()
    created_by: Mapped[str] = mapped_column(String(100))
    expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)


class Quota(Base):
    __tablename__ = "quotas"

    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    requests_per_minute: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tokens_per_day: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    budget_usd_per_month: Mapped[float | None] = mapped_column(Float, nullable=True)
    adapter_slots: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Counter(Base):
    """A shared counter for quota windows; the key names project, metric and window."""

    __tablename__ = "counters"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class UsageRecord(Base):
    __tablename__ = "usage_records"
    __table_args__ = (Index("ix_usage_project_day", "project_id", "day"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    ts: Mapped[datetime] = _created()
    day: Mapped[date] = mapped_column(Date)
    request_id: Mapped[str] = mapped_column(String(64), default="", index=True)
    key_id: Mapped[int | None] = mapped_column(nullable=True)
    principal: Mapped[str] = mapped_column(String(100), default="")
    model: Mapped[str] = mapped_column(String(200))
    target: Mapped[str] = mapped_column(String(100), default="", server_default="")
    adapter: Mapped[str] = mapped_column(String(200), default="")
    prompt_version: Mapped[str] = mapped_column(String(200), default="")
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    gpu_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    cache_hit: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(40), default="ok")


class Feedback(Base):
    """A caller's verdict on one answer (``POST /v1/feedback``): 0 is bad, 1 is good."""

    __tablename__ = "feedback"
    __table_args__ = (Index("ix_feedback_arm", "project_id", "deployment", "target"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    request_id: Mapped[str] = mapped_column(String(64), index=True)
    deployment: Mapped[str] = mapped_column(String(200))
    target: Mapped[str] = mapped_column(String(100), default="")
    score: Mapped[float] = mapped_column(Float)
    comment: Mapped[str] = mapped_column(Text, default="")
    principal: Mapped[str] = mapped_column(String(120), default="")
    ts: Mapped[datetime] = _created()


class ShadowResult(Base):
    """A shadow target's answer to a mirrored request, compared with what the caller got.
    Never returned and never billed to the caller; texts are kept only when the project
    enables prompt logging."""

    __tablename__ = "shadow_results"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    request_id: Mapped[str] = mapped_column(String(64))
    deployment: Mapped[str] = mapped_column(String(200))
    primary_target: Mapped[str] = mapped_column(String(100))
    shadow_target: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(40))
    similarity: Mapped[float | None] = mapped_column(Float, nullable=True)
    primary_text: Mapped[str] = mapped_column(Text, default="")
    shadow_text: Mapped[str] = mapped_column(Text, default="")
    shadow_tokens: Mapped[int] = mapped_column(Integer, default=0)
    shadow_cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    shadow_latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    ts: Mapped[datetime] = _created()


class AuditEvent(Base):
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    ts: Mapped[datetime] = _created()
    actor: Mapped[str] = mapped_column(String(120))
    project_id: Mapped[int | None] = mapped_column(nullable=True, index=True)
    project: Mapped[str] = mapped_column(String(40), default="")
    action: Mapped[str] = mapped_column(String(60))
    resource: Mapped[str] = mapped_column(String(300), default="")
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


# --------------------------------------------------------------------------- registry


class _Versioned:
    """Columns every immutable, versioned registry entry has."""

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = _created()
    created_by: Mapped[str] = mapped_column(String(120))


class Model(_Versioned, Base):
    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("project_id", "name", "version"),)

    project_id: Mapped[int] = _project_fk()
    source: Mapped[str] = mapped_column(String(500))
    revision: Mapped[str] = mapped_column(String(100), default="")
    license: Mapped[str] = mapped_column(String(60))
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)


class Dataset(_Versioned, Base):
    __tablename__ = "datasets"
    __table_args__ = (
        UniqueConstraint("project_id", "name", "version"),
        UniqueConstraint("project_id", "name", "sha256"),
    )

    project_id: Mapped[int] = _project_fk()
    sha256: Mapped[str] = mapped_column(String(64))
    format: Mapped[str] = mapped_column(String(20))
    rows: Mapped[int] = mapped_column(Integer)
    schema_: Mapped[dict[str, Any]] = mapped_column("schema", default=dict)
    stats: Mapped[dict[str, Any]] = mapped_column(default=dict)
    splits: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Run(Base):
    """A training or processing run. Not versioned: its status and metrics grow."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True)
    project_id: Mapped[int] = _project_fk()
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(40), default="training")
    status: Mapped[str] = mapped_column(String(20), default="running")
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    code_version: Mapped[str] = mapped_column(String(100), default="")
    started_at: Mapped[datetime] = _created()
    ended_at: Mapped[datetime | None] = mapped_column(nullable=True)
    created_by: Mapped[str] = mapped_column(String(120))


class RunMetric(Base):
    __tablename__ = "run_metrics"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[float] = mapped_column(Float)
    ts: Mapped[datetime] = _created()


class Adapter(_Versioned, Base):
    __tablename__ = "adapters"
    __table_args__ = (UniqueConstraint("project_id", "name", "version"),)

    project_id: Mapped[int] = _project_fk()
    base_model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    method: Mapped[str] = mapped_column(String(20), default="lora")
    rank: Mapped[int] = mapped_column(Integer)
    alpha: Mapped[float] = mapped_column(Float)
    target_modules: Mapped[list[Any]] = mapped_column(default=list)
    run_id: Mapped[int | None] = mapped_column(
        ForeignKey("runs.id", ondelete="SET NULL"), nullable=True
    )
    artifact: Mapped[str] = mapped_column(String(64), default="")


class PromptVersion(_Versioned, Base):
    __tablename__ = "prompt_versions"
    __table_args__ = (UniqueConstraint("project_id", "name", "version"),)

    project_id: Mapped[int] = _project_fk()
    kind: Mapped[str] = mapped_column(String(10), default="text")
    template: Mapped[dict[str, Any]] = mapped_column(default=dict)
    content_hash: Mapped[str] = mapped_column(String(64))


class Deployment(_Versioned, Base):
    """A deployment revision: each change of what a deployment serves is a new version."""

    __tablename__ = "deployments"
    __table_args__ = (UniqueConstraint("project_id", "name", "version"),)

    project_id: Mapped[int] = _project_fk()
    model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id"), nullable=True)
    adapter_id: Mapped[int | None] = mapped_column(ForeignKey("adapters.id"), nullable=True)
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict)


class EvalRun(Base):
    __tablename__ = "eval_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True)
    project_id: Mapped[int] = _project_fk()
    suite: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20), default="running")
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    started_at: Mapped[datetime] = _created()
    ended_at: Mapped[datetime | None] = mapped_column(nullable=True)
    created_by: Mapped[str] = mapped_column(String(120))


class Alias(Base):
    __tablename__ = "aliases"

    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    alias: Mapped[str] = mapped_column(String(100), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = _created()
    updated_by: Mapped[str] = mapped_column(String(120))


class AliasEvent(Base):
    """The audit trail of alias moves: which version an alias pointed at, and when."""

    __tablename__ = "alias_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = _project_fk()
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(100))
    alias: Mapped[str] = mapped_column(String(100))
    from_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    to_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    ts: Mapped[datetime] = _created()
    actor: Mapped[str] = mapped_column(String(120))


class LineageEdge(Base):
    """parent → child: a dataset feeds a run, a run produces an adapter, and so on."""

    __tablename__ = "lineage_edges"
    __table_args__ = (Index("ix_lineage_child", "child_kind", "child_id"),)

    project_id: Mapped[int] = _project_fk()
    parent_kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    parent_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    child_kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    child_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    relation: Mapped[str] = mapped_column(String(40))


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
    evicts the entry. Kept for a few days only."""

    __tablename__ = "cache_hits"
    __table_args__ = (Index("ix_cache_hits_request", "project_id", "request_id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    request_id: Mapped[str] = mapped_column(String(64))
    entry_id: Mapped[str] = mapped_column(String(32))
    ts: Mapped[datetime] = mapped_column(index=True)


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
