"""Evaluation suites (versioned) and each eval run's per-row results."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from genai.store.schema._base import Base, _created, _project_fk
from genai.store.schema._core import _Versioned

__all__ = ["EvalResult", "EvalSuite"]


class EvalSuite(_Versioned, Base):
    """A suite version: a dataset version plus metrics, thresholds and run options (the
    ``definition`` document); a new definition is a new version, the same one is not."""

    __tablename__ = "eval_suites"
    __table_args__ = (
        UniqueConstraint("project_id", "name", "version"),
        UniqueConstraint("project_id", "name", "content_hash"),
    )

    project_id: Mapped[int] = _project_fk()
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"))
    definition: Mapped[dict[str, Any]] = mapped_column(default=dict)
    content_hash: Mapped[str] = mapped_column(String(64))


class EvalResult(Base):
    """One row × repeat of an eval run: the answer and the metric values (JSON documents
    that ``eval`` validates), written as the run goes so an interrupted run resumes
    without redoing finished rows. ``cache_key`` finds an identical earlier answer of the
    project (same target revision, request and repeat) for a re-run."""

    __tablename__ = "eval_results"
    __table_args__ = (
        UniqueConstraint("eval_run_id", "row_index", "repeat"),
        Index("ix_eval_results_project_cache", "project_id", "cache_key"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    eval_run_id: Mapped[int] = mapped_column(
        ForeignKey("eval_runs.id", ondelete="CASCADE"), index=True
    )
    row_index: Mapped[int] = mapped_column(Integer)
    repeat: Mapped[int] = mapped_column(Integer)
    cache_key: Mapped[str] = mapped_column(String(64))
    answer: Mapped[dict[str, Any]] = mapped_column(default=dict)
    scores: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = _created()
