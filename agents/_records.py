"""An agent run's rows in the platform's store, for one project: the run, its trace, its tool
calls' outcomes and its approvals (the package owns these tables; who may do what is
decided before a :class:`RunRecords` is made, in :mod:`agents._runner`).

Each method is one transaction. Writes that a resumed step repeats are idempotent: a trace
step is keyed by its index, a tool call by its id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, delete, insert, select

from genai.errors import ConflictError, NotFoundError
from genai.store import Store
from genai.store import schema as t

__all__ = ["ApprovalInfo", "RunInfo", "RunRecords", "StepInfo", "ToolCallRecord"]


@dataclass(frozen=True)
class RunInfo:
    """An agent run as the store holds it."""

    run_id: str
    project: str
    agent: str
    status: str
    detail: str
    output: str | None
    steps: int
    tokens: int
    cost_usd: float
    session: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    definition: Mapping[str, Any]
    input: list[Any]

    @property
    def finished(self) -> bool:
        return self.status not in ("running", "awaiting_approval")


@dataclass(frozen=True)
class StepInfo:
    """One entry of a run's trace."""

    index: int
    kind: str  # model | tool | handoff
    name: str
    agent: str
    status: str
    detail: Mapping[str, Any]
    latency_ms: float


@dataclass(frozen=True)
class ToolCallRecord:
    call_id: str
    tool: str
    status: str  # started | ok | invalid_arguments | error | timeout | rejected
    result: str


@dataclass(frozen=True)
class ApprovalInfo:
    """A tool call that waits (or waited) for a person."""

    run_id: str
    call_id: str
    tool: str
    arguments: Mapping[str, Any]
    status: str  # pending | approved | rejected | edited
    edited_arguments: Mapping[str, Any] | None
    reason: str
    decided_by: str | None
    created_at: datetime


class RunRecords:
    """The rows of project ``project_id``'s agent runs (see the module's docstring)."""

    def __init__(self, store: Store, *, project_id: int, project: str) -> None:
        self._store = store
        self.project_id = project_id
        self.project = project
        self._pks: dict[str, int] = {}

    # ---------------------------------------------------------------- runs

    def create(
        self,
        *,
        run_id: str,
        agent: str,
        definition: Mapping[str, Any],
        input: list[Any],
        session: str | None,
        created_by: str,
    ) -> RunInfo:
        with self._store.session() as s:
            row = t.AgentRun(
                project_id=self.project_id,
                run_id=run_id,
                agent=agent,
                definition=dict(definition),
                input=input,
                status="running",
                session=session,
                created_by=created_by,
            )
            s.add(row)
            s.flush()
            return self._info(row)

    def get(self, run_id: str) -> RunInfo:
        with self._store.session() as s:
            return self._info(self._row(s, run_id))

    def update(self, run_id: str, **fields: Any) -> RunInfo:
        with self._store.session() as s:
            row = self._row(s, run_id)
            for name, value in fields.items():
                setattr(row, name, value)
            s.flush()
            return self._info(row)

    def finish(self, run_id: str, trace: Sequence[StepInfo], **fields: Any) -> RunInfo:
        """Write the run's trace and how it ended, in one transaction."""
        with self._store.session() as s:
            self._write_steps(s, run_id, trace)
            row = self._row(s, run_id)
            for name, value in fields.items():
                setattr(row, name, value)
            s.flush()
            return self._info(row)

    def runs(self, *, limit: int = 50, status: str | None = None) -> list[RunInfo]:
        with self._store.session() as s:
            query = select(t.AgentRun).where(t.AgentRun.project_id == self.project_id)
            if status is not None:
                query = query.where(t.AgentRun.status == status)
            rows = s.scalars(query.order_by(t.AgentRun.id.desc()).limit(limit))
            return [self._info(row) for row in rows]

    def last_of_session(self, session: str) -> RunInfo | None:
        """The newest run of a conversation (``x-genai-session``) of this project."""
        with self._store.session() as s:
            row = s.scalars(
                select(t.AgentRun)
                .where(t.AgentRun.project_id == self.project_id, t.AgentRun.session == session)
                .order_by(t.AgentRun.id.desc())
                .limit(1)
            ).first()
            return None if row is None else self._info(row)

    # ---------------------------------------------------------------- trace

    def record_steps(self, run_id: str, steps: Sequence[StepInfo]) -> None:
        """Write trace entries (again, when a resumed run repeats them)."""
        with self._store.session() as s:
            self._write_steps(s, run_id, steps)

    def _write_steps(self, s: Any, run_id: str, steps: Sequence[StepInfo]) -> None:
        if not steps:
            return
        pk = self._pk(s, run_id)
        s.execute(
            delete(t.AgentStep).where(
                t.AgentStep.run_pk == pk, t.AgentStep.index.in_([x.index for x in steps])
            )
        )
        s.execute(
            insert(cast(Table, t.AgentStep.__table__)),  # Core: the ORM's bulk insert is slower
            [
                {
                    "project_id": self.project_id,
                    "run_pk": pk,
                    "index": step.index,
                    "kind": step.kind,
                    "name": step.name,
                    "agent": step.agent,
                    "status": step.status,
                    "detail": dict(step.detail),
                    "latency_ms": step.latency_ms,
                    "created_at": t.utcnow(),
                }
                for step in steps
            ],
        )

    def steps(self, run_id: str) -> list[StepInfo]:
        with self._store.session() as s:
            pk = self._pk(s, run_id)
            rows = s.scalars(
                select(t.AgentStep).where(t.AgentStep.run_pk == pk).order_by(t.AgentStep.index)
            )
            return [
                StepInfo(r.index, r.kind, r.name, r.agent, r.status, r.detail, r.latency_ms)
                for r in rows
            ]

    # ---------------------------------------------------------------- tool calls

    def tool_calls(self, run_id: str, call_ids: Sequence[str]) -> dict[str, ToolCallRecord]:
        """The kept outcomes of these calls of the run, by call id."""
        with self._store.session() as s:
            rows = s.scalars(
                select(t.AgentToolCall).where(
                    t.AgentToolCall.run_pk == self._pk(s, run_id),
                    t.AgentToolCall.call_id.in_(list(call_ids)),
                )
            )
            return {r.call_id: ToolCallRecord(r.call_id, r.tool, r.status, r.result) for r in rows}

    def tool_call(self, run_id: str, call_id: str) -> ToolCallRecord | None:
        with self._store.session() as s:
            row = self._call_row(s, self._pk(s, run_id), call_id)
            return (
                None
                if row is None
                else ToolCallRecord(row.call_id, row.tool, row.status, row.result)
            )

    def start_tool_call(
        self, run_id: str, call_id: str, tool: str, arguments: Mapping[str, Any]
    ) -> bool:
        """Claim a side-effecting call before it runs: False when it was claimed before (by
        this run before a crash), and the tool must not run again."""
        try:
            with self._store.session() as s:
                s.add(
                    t.AgentToolCall(
                        project_id=self.project_id,
                        run_pk=self._pk(s, run_id),
                        call_id=call_id,
                        tool=tool,
                        arguments=dict(arguments),
                        status="started",
                    )
                )
        except ConflictError:  # the store's word for the unique (run, call) already taken
            return False
        return True

    def finish_tool_call(
        self,
        run_id: str,
        call_id: str,
        tool: str,
        arguments: Mapping[str, Any],
        *,
        status: str,
        result: str,
    ) -> None:
        with self._store.session() as s:
            pk = self._pk(s, run_id)
            row = self._call_row(s, pk, call_id)
            if row is None:
                row = t.AgentToolCall(
                    project_id=self.project_id,
                    run_pk=pk,
                    call_id=call_id,
                    tool=tool,
                    arguments=dict(arguments),
                )
                s.add(row)
            row.status = status
            row.result = result

    # ---------------------------------------------------------------- approvals

    def ask_approval(
        self, run_id: str, call_id: str, tool: str, arguments: Mapping[str, Any]
    ) -> ApprovalInfo:
        """The approval of this call: the existing one, or a new pending one."""
        with self._store.session() as s:
            run = self._row(s, run_id)
            row = self._approval_row(s, run.id, call_id)
            if row is None:
                row = t.AgentApproval(
                    project_id=self.project_id,
                    run_pk=run.id,
                    call_id=call_id,
                    tool=tool,
                    arguments=dict(arguments),
                    status="pending",
                )
                s.add(row)
                s.flush()
            return _approval(row, run_id)

    def approvals(
        self, *, status: str | None = "pending", run_id: str | None = None
    ) -> list[ApprovalInfo]:
        with self._store.session() as s:
            query = (
                select(t.AgentApproval, t.AgentRun.run_id)
                .join(t.AgentRun, t.AgentRun.id == t.AgentApproval.run_pk)
                .where(t.AgentApproval.project_id == self.project_id)
            )
            if status is not None:
                query = query.where(t.AgentApproval.status == status)
            if run_id is not None:
                query = query.where(t.AgentRun.run_id == run_id)
            rows = s.execute(query.order_by(t.AgentApproval.id)).all()
            return [_approval(row, rid) for row, rid in rows]

    def decide(
        self,
        run_id: str,
        call_id: str,
        *,
        status: str,
        by: str,
        reason: str = "",
        arguments: Mapping[str, Any] | None = None,
    ) -> ApprovalInfo:
        with self._store.session() as s:
            run = self._row(s, run_id)
            row = self._approval_row(s, run.id, call_id)
            if row is None:
                raise NotFoundError(f"no approval for call {call_id!r} in agent run {run_id!r}")
            if row.status != "pending":
                raise ConflictError(
                    f"call {call_id!r} of agent run {run_id!r} was already {row.status} by "
                    f"{row.decided_by}: a decision is final"
                )
            row.status = status
            row.reason = reason
            row.edited_arguments = dict(arguments) if arguments is not None else None
            row.decided_by = by
            row.decided_at = t.utcnow()
            s.flush()
            return _approval(row, run_id)

    # ---------------------------------------------------------------- helpers

    def _pk(self, s: Any, run_id: str) -> int:
        """The run's row id (looked up once: a run never moves to another project)."""
        pk = self._pks.get(run_id)
        if pk is None:
            pk = s.scalar(
                select(t.AgentRun.id).where(
                    t.AgentRun.project_id == self.project_id, t.AgentRun.run_id == run_id
                )
            )
            if pk is None:
                raise NotFoundError(f"agent run {run_id!r} not found in project {self.project!r}")
            self._pks[run_id] = pk
        return pk

    def _row(self, s: Any, run_id: str) -> t.AgentRun:
        row = s.scalars(
            select(t.AgentRun).where(
                t.AgentRun.project_id == self.project_id, t.AgentRun.run_id == run_id
            )
        ).one_or_none()
        if row is None:
            raise NotFoundError(f"agent run {run_id!r} not found in project {self.project!r}")
        return row  # type: ignore[no-any-return]

    @staticmethod
    def _call_row(s: Any, run_pk: int, call_id: str) -> t.AgentToolCall | None:
        return s.scalars(  # type: ignore[no-any-return]
            select(t.AgentToolCall).where(
                t.AgentToolCall.run_pk == run_pk, t.AgentToolCall.call_id == call_id
            )
        ).one_or_none()

    @staticmethod
    def _approval_row(s: Any, run_pk: int, call_id: str) -> t.AgentApproval | None:
        return s.scalars(  # type: ignore[no-any-return]
            select(t.AgentApproval).where(
                t.AgentApproval.run_pk == run_pk, t.AgentApproval.call_id == call_id
            )
        ).one_or_none()

    def _info(self, row: t.AgentRun) -> RunInfo:
        return RunInfo(
            run_id=row.run_id,
            project=self.project,
            agent=row.agent,
            status=row.status,
            detail=row.detail or "",
            output=row.output,
            steps=row.steps or 0,
            tokens=row.tokens or 0,
            cost_usd=row.cost_usd or 0.0,
            session=row.session,
            created_by=row.created_by,
            created_at=row.created_at,
            updated_at=row.updated_at,
            definition=row.definition,
            input=row.input,
        )


def _approval(row: t.AgentApproval, run_id: str) -> ApprovalInfo:
    return ApprovalInfo(
        run_id=run_id,
        call_id=row.call_id,
        tool=row.tool,
        arguments=row.arguments,
        status=row.status,
        edited_arguments=row.edited_arguments,
        reason=row.reason or "",
        decided_by=row.decided_by,
        created_at=row.created_at,
    )
