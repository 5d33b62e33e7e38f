"""The core layer's tables: AI Projects, principals, keys, quotas, usage, the registry."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from genai.store.schema._base import Base, _created, _project_fk

__all__ = [
    "Adapter",
    "Alias",
    "AliasEvent",
    "ApiKey",
    "AuditEvent",
    "Counter",
    "Dataset",
    "Deployment",
    "EvalRun",
    "Feedback",
    "LineageEdge",
    "Membership",
    "Model",
    "Principal",
    "Project",
    "ProjectSecret",
    "PromptVersion",
    "Quota",
    "Run",
    "RunMetric",
    "ShadowResult",
    "UsageRecord",
]


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
    max_in_flight: Mapped[int | None] = mapped_column(Integer, nullable=True)
    gpus: Mapped[int | None] = mapped_column(Integer, nullable=True)


class ProjectSecret(Base):
    """A credential a project's deployments use upstream (a vendor's API key), by name.

    The value is stored encrypted (AES-GCM under the platform's secret key, bound to the
    project and the name); it is written through the API and never read back by callers:
    only the gateway decrypts it, to send it to the upstream a deployment names."""

    __tablename__ = "project_secrets"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    ciphertext: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()
    created_by: Mapped[str] = mapped_column(String(120), default="")
    updated_at: Mapped[datetime] = _created()
    updated_by: Mapped[str] = mapped_column(String(120), default="")


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
    Never returned and never billed to the caller; texts (the request's and both answers)
    are kept only when the project enables prompt logging."""

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
    #: the request the two answered, as the prompt log keeps it (after the request stages:
    #: DLP's pseudonyms, never raw personal data): JSON of its ``messages``/``prompt``/
    #: ``input``; kept, like the texts, only when the project enables prompt logging
    prompt_text: Mapped[str] = mapped_column(Text, default="", server_default="")
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
    # The stored model directory (a GGUF file imported), or '' (source is the model).
    artifact: Mapped[str] = mapped_column(String(64), default="", server_default="")


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
    chat_template: Mapped[str] = mapped_column(Text, default="", server_default="")
    tokenizer_sha256: Mapped[str] = mapped_column(String(64), default="", server_default="")
    lint: Mapped[list[Any]] = mapped_column(default=list, server_default=text("'[]'"))
    metadata_: Mapped[dict[str, Any]] = mapped_column(
        "metadata", default=dict, server_default=text("'{}'")
    )


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
    """The audit trail of alias moves: which version an alias pointed at, when, and on
    what evidence (an eval run of the project, for an eval-gated promotion)."""

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
    # what the move rests on: the eval run that gated it (``eval:ID``), or None
    evidence: Mapped[str | None] = mapped_column(String(64), nullable=True)


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
