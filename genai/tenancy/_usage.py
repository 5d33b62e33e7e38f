"""The usage ledger (a row per request) and the showback report; the feedback callers gave
answers, by the target that answered; the shadow answers beside the callers' answers; the
audit log reader."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Integer, Table, case, func, insert, select
from sqlalchemy.orm import Session

from genai.errors import Forbidden, ValidationError
from genai.store import schema as t
from genai.tenancy._quotas import QuotaEnforcer
from genai.tenancy._rbac import Action
from genai.tenancy._types import (
    AuditEntry,
    FeedbackRow,
    ShadowRow,
    UsageEvent,
    UsageReport,
    UsageRow,
)

if TYPE_CHECKING:
    from genai._context import Context

__all__ = ["GROUPS", "Audit", "Usage", "write_usage"]

#: What a showback report can be grouped by.
GROUPS = ("project", "model", "adapter", "day")


def write_usage(
    session: Session,
    project_id: int,
    events: Sequence[UsageEvent],
    *,
    principal: str = "",
    key_id: int | None = None,
) -> None:
    """Insert ledger rows in the caller's transaction (one statement for the batch)."""
    if not events:
        return
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    for event in events:
        ts = event.ts or now
        rows.append(
            {
                **event.model_dump(exclude={"ts"}),
                "project_id": project_id,
                "principal": principal,
                "key_id": key_id,
                "ts": ts,
                "day": ts.astimezone(UTC).date(),
            }
        )
    table = cast(Table, t.UsageRecord.__table__)
    session.execute(insert(table), rows)  # Core: no ORM bookkeeping per row


class Usage:
    """Record usage and report it back grouped by project, model, adapter and day."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def record(self, project: str, events: UsageEvent | Sequence[UsageEvent]) -> int:
        """Add ledger rows (and count their tokens and cost against the quotas)."""
        batch = [events] if isinstance(events, UsageEvent) else list(events)
        with self._ctx.store.session() as s:
            me = self._ctx.me(s)
            proj = self._ctx.project(s, me, project, Action.USAGE_RECORD)
            write_usage(s, proj.id, batch, principal=me.label, key_id=me.key_id)
        enforcer = QuotaEnforcer(self._ctx.counters)
        billable = [e for e in batch if not e.cache_hit]
        enforcer.record_spend(
            proj.id,
            tokens=sum(e.prompt_tokens + e.completion_tokens for e in billable),
            cost_usd=sum(e.cost_usd for e in billable),
        )
        return len(batch)

    def report(
        self,
        project: str | None = None,
        *,
        group_by: Sequence[str] = GROUPS,
        since: date | None = None,
        until: date | None = None,
    ) -> UsageReport:
        """Showback: requests, tokens, cost, GPU time, cache hits and errors per group.

        Without ``project`` the report spans every project the caller may read usage of.
        ``since`` and ``until`` are inclusive UTC days.
        """
        groups = tuple(dict.fromkeys(group_by))
        unknown = [g for g in groups if g not in GROUPS]
        if unknown:
            raise ValidationError(
                f"cannot group usage by {', '.join(unknown)}: use any of {', '.join(GROUPS)}",
                field="group_by",
            )
        with self._ctx.store.session() as s:
            me = self._ctx.me(s)
            if project is not None:
                projects = [self._ctx.project(s, me, project, Action.USAGE_READ)]
            else:
                projects = self._ctx.visible_projects(s, me, Action.USAGE_READ)
            names = {p.id: p.name for p in projects}
            columns: dict[str, Any] = {
                "project": t.UsageRecord.project_id,
                "model": t.UsageRecord.model,
                "adapter": t.UsageRecord.adapter,
                "day": t.UsageRecord.day,
            }
            keys = [columns[g] for g in groups]
            where: builtins.list[Any] = [t.UsageRecord.project_id.in_(builtins.list(names))]
            if since is not None:
                where.append(t.UsageRecord.day >= since)
            if until is not None:
                where.append(t.UsageRecord.day <= until)
            rows = (
                s.execute(
                    select(*keys, *_aggregates()).where(*where).group_by(*keys).order_by(*keys)
                ).all()
                if keys
                else []
            )
            total = s.execute(select(*_aggregates()).where(*where)).one()
        out = []
        for row in rows:
            labels = dict(zip(groups, row[: len(groups)], strict=True))
            if "project" in labels:
                labels["project"] = names[labels["project"]]
            out.append(_usage_row(labels, row[len(groups) :]))
        return UsageReport(
            group_by=groups, since=since, until=until, rows=out, total=_usage_row({}, tuple(total))
        )

    def feedback(
        self,
        project: str,
        deployment: str,
        *,
        since: datetime | None = None,
        targets: Sequence[str] | None = None,
    ) -> builtins.list[FeedbackRow]:
        """The feedback on answers of ``deployment`` (answered at or after ``since``; by
        ``targets`` only, when given), oldest answer first. An answer scored more than once
        counts once, with its latest score. Each row says which target answered (the
        usage ledger's row of the same request)."""
        fb, rec = t.Feedback, t.UsageRecord
        with self._ctx.store.session() as s:
            me = self._ctx.me(s)
            proj = self._ctx.project(s, me, project, Action.USAGE_READ)
            query = (
                select(fb, rec.ts, rec.target)
                .join(rec, (rec.project_id == fb.project_id) & (rec.request_id == fb.request_id))
                .where(fb.project_id == proj.id, fb.deployment == deployment)
                .order_by(fb.id)
            )
            if since is not None:
                query = query.where(rec.ts >= since)
            latest: dict[str, FeedbackRow] = {}  # a later score replaces an earlier one
            for row, answered_at, answered_by in s.execute(query):
                target = row.target or answered_by
                if targets is not None and target not in targets:
                    continue
                latest[row.request_id] = FeedbackRow(
                    request_id=row.request_id,
                    deployment=row.deployment,
                    target=target,
                    score=row.score,
                    answered_at=answered_at,
                    ts=row.ts,
                )
        return sorted(latest.values(), key=lambda r: (r.answered_at, r.ts))

    def shadow_results(
        self,
        project: str,
        deployment: str,
        *,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> builtins.list[ShadowRow]:
        """The shadow answers of ``deployment`` (recorded at or after ``since``), each with
        the caller's answer beside it, oldest first; with ``limit``, the newest ``limit``
        of them. Readable by whoever may read the project's usage; another project's
        deployment has none here (its project is not found, as a missing one is not)."""
        if limit is not None and (isinstance(limit, bool) or limit < 1):
            raise ValidationError(f"limit is 1 or more, not {limit!r}", field="limit")
        sh, rec = t.ShadowResult, t.UsageRecord
        with self._ctx.store.session() as s:
            me = self._ctx.me(s)
            proj = self._ctx.project(s, me, project, Action.USAGE_READ)
            ids = select(sh.id).where(sh.project_id == proj.id, sh.deployment == deployment)
            if since is not None:
                ids = ids.where(sh.ts >= since)
            ids = ids.order_by(sh.id.desc()).limit(limit)
            query = (
                select(sh, rec)
                .outerjoin(
                    rec, (rec.project_id == sh.project_id) & (rec.request_id == sh.request_id)
                )
                .where(sh.id.in_(ids.scalar_subquery()))
                .order_by(sh.id)
            )
            out: dict[int, ShadowRow] = {}
            for row, usage in s.execute(query):
                out.setdefault(row.id, _shadow_row(row, usage))
        return builtins.list(out.values())


def _shadow_row(row: t.ShadowResult, usage: t.UsageRecord | None) -> ShadowRow:
    return ShadowRow(
        request_id=row.request_id,
        deployment=row.deployment,
        ts=row.ts,
        primary_target=row.primary_target,
        shadow_target=row.shadow_target,
        status=row.status,
        similarity=row.similarity,
        prompt_text=row.prompt_text,
        primary_text=row.primary_text,
        shadow_text=row.shadow_text,
        shadow_tokens=row.shadow_tokens,
        shadow_cost_usd=row.shadow_cost_usd,
        shadow_latency_ms=row.shadow_latency_ms,
        primary_prompt_tokens=usage.prompt_tokens if usage is not None else None,
        primary_completion_tokens=usage.completion_tokens if usage is not None else None,
        primary_cost_usd=usage.cost_usd if usage is not None else None,
        primary_latency_ms=usage.latency_ms if usage is not None else None,
    )


def _aggregates() -> builtins.list[Any]:
    rec = t.UsageRecord
    return [
        func.count(),
        func.coalesce(func.sum(rec.prompt_tokens), 0),
        func.coalesce(func.sum(rec.completion_tokens), 0),
        func.coalesce(func.sum(rec.cost_usd), 0.0),
        func.coalesce(func.sum(rec.gpu_seconds), 0.0),
        func.coalesce(func.sum(case((rec.cache_hit, 1), else_=0)), 0),
        func.coalesce(func.sum(case((rec.status != "ok", 1), else_=0).cast(Integer)), 0),
        func.coalesce(func.avg(rec.latency_ms), 0.0),
    ]


def _usage_row(labels: dict[str, Any], values: Sequence[Any]) -> UsageRow:
    requests, prompt, completion, cost, gpu, hits, errors, latency = values
    return UsageRow(
        **labels,
        requests=int(requests),
        prompt_tokens=int(prompt),
        completion_tokens=int(completion),
        cost_usd=round(float(cost), 8),
        gpu_seconds=float(gpu),
        cache_hits=int(hits),
        errors=int(errors),
        avg_latency_ms=round(float(latency), 3),
    )


class Audit:
    """Read the audit log: who did what, in which project, when."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def list(
        self, project: str | None = None, *, action: str | None = None, limit: int = 100
    ) -> builtins.list[AuditEntry]:
        """Newest first. Without ``project``: platform admins only (every event)."""
        with self._ctx.store.session() as s:
            me = self._ctx.me(s)
            query = select(t.AuditEvent).order_by(t.AuditEvent.id.desc()).limit(max(1, limit))
            if project is not None:
                proj = self._ctx.project(s, me, project, Action.AUDIT_READ)
                query = query.where(t.AuditEvent.project_id == proj.id)
            elif not me.is_admin:
                raise Forbidden("only platform admins may read the whole audit log: name a project")
            if action is not None:
                query = query.where(t.AuditEvent.action == action)
            return [
                AuditEntry(
                    ts=e.ts,
                    actor=e.actor,
                    project=e.project,
                    action=e.action,
                    resource=e.resource,
                    details=dict(e.details),
                )
                for e in s.scalars(query)
            ]
