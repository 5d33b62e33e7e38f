"""Agent runs (``agents``): the run, its checkpoints (LangGraph's, kept in this store), its
trace, the results of its tool calls (a side-effecting tool runs once per call) and the
approvals it waits for.

Every row carries ``project_id`` and is looked up by it: another project's run is not found.
"""

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

from genai.store.schema._base import Base, _created, _project_fk, utcnow

__all__ = [
    "AgentApproval",
    "AgentCheckpoint",
    "AgentCheckpointWrite",
    "AgentRun",
    "AgentStep",
    "AgentToolCall",
]

_BIGINT = BigInteger().with_variant(Integer, "sqlite")


class AgentRun(Base):
    """One run of an agent: what it was asked, the agent's definition as it ran (a resumed
    run goes on with the same one), its status and totals. ``run_id`` is the public id
    (``run_…``), unique across the platform; ``thread_id`` its LangGraph thread."""

    __tablename__ = "agent_runs"
    __table_args__ = (UniqueConstraint("run_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = _project_fk()
    run_id: Mapped[str] = mapped_column(String(40))
    agent: Mapped[str] = mapped_column(String(100))
    definition: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    input: Mapped[list[Any]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(30))
    detail: Mapped[str] = mapped_column(Text, default="")
    output: Mapped[str | None] = mapped_column(Text, nullable=True)
    steps: Mapped[int] = mapped_column(Integer, default=0)
    tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    session: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AgentCheckpoint(Base):
    """A LangGraph checkpoint of a run's thread (serialised by LangGraph's serde)."""

    __tablename__ = "agent_checkpoints"

    project_id: Mapped[int] = _project_fk()
    thread_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    checkpoint_ns: Mapped[str] = mapped_column(String(200), primary_key=True, default="")
    checkpoint_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    parent_checkpoint_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    type: Mapped[str] = mapped_column(String(40))
    checkpoint: Mapped[bytes] = mapped_column(LargeBinary)
    metadata_type: Mapped[str] = mapped_column(String(40))
    metadata_blob: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = _created()


class AgentCheckpointWrite(Base):
    """A pending write of a LangGraph task (what a node wrote before its step finished)."""

    __tablename__ = "agent_checkpoint_writes"

    project_id: Mapped[int] = _project_fk()
    thread_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    checkpoint_ns: Mapped[str] = mapped_column(String(200), primary_key=True, default="")
    checkpoint_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    task_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(40))
    value: Mapped[bytes] = mapped_column(LargeBinary)
    task_path: Mapped[str] = mapped_column(String(500), default="")


class AgentStep(Base):
    """One step of a run's trace: a model call (tokens, cost, the gateway's request id) or a
    tool call (arguments and result, truncated and scrubbed), with its latency."""

    __tablename__ = "agent_steps"
    __table_args__ = (UniqueConstraint("run_pk", "index"),)

    id: Mapped[int] = mapped_column(_BIGINT, primary_key=True)
    project_id: Mapped[int] = _project_fk()
    run_pk: Mapped[int] = mapped_column(ForeignKey("agent_runs.id", ondelete="CASCADE"))
    index: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(20))  # model | tool | agent
    name: Mapped[str] = mapped_column(String(200))
    agent: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(30))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = _created()


class AgentToolCall(Base):
    """A tool call's outcome, kept by ``(run_pk, call_id)``: a run resumed after a crash
    takes a finished call's result from here instead of running the tool again."""

    __tablename__ = "agent_tool_calls"
    __table_args__ = (UniqueConstraint("run_pk", "call_id"),)

    id: Mapped[int] = mapped_column(_BIGINT, primary_key=True)
    project_id: Mapped[int] = _project_fk()
    run_pk: Mapped[int] = mapped_column(ForeignKey("agent_runs.id", ondelete="CASCADE"))
    call_id: Mapped[str] = mapped_column(String(100))
    tool: Mapped[str] = mapped_column(String(100))
    arguments: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(20))
    result: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = _created()


class AgentApproval(Base):
    """A tool call waiting for a person (``requires_approval``), and what they decided:
    ``pending`` → ``approved`` | ``rejected`` | ``edited`` (approved with other arguments)."""

    __tablename__ = "agent_approvals"
    __table_args__ = (
        UniqueConstraint("run_pk", "call_id"),
        Index("ix_agent_approvals_project_status", "project_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    run_pk: Mapped[int] = mapped_column(ForeignKey("agent_runs.id", ondelete="CASCADE"))
    call_id: Mapped[str] = mapped_column(String(100))
    tool: Mapped[str] = mapped_column(String(100))
    arguments: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    edited_arguments: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    decided_by: Mapped[str | None] = mapped_column(String(120), nullable=True)
    created_at: Mapped[datetime] = _created()
    decided_at: Mapped[datetime | None] = mapped_column(nullable=True)
