"""Runs: training and processing jobs, with metrics per step."""

from __future__ import annotations

import builtins
import secrets
import subprocess
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from genai._names import check_metric_name, check_resource_name
from genai.errors import ConflictError, ValidationError
from genai.registry._batch import check_limit, inputs_of, latest_metrics
from genai.registry._refs import Ref, add_edge, lock_project, resolve
from genai.registry._types import MetricPoint, RunInfo
from genai.store import schema as t
from genai.tenancy._rbac import Action

if TYPE_CHECKING:
    from genai._context import Context

__all__ = ["ActiveRun", "Runs", "code_version"]

_STATUSES = ("running", "finished", "failed", "cancelled")
#: How a run may end; "interrupted" is a killed training, to be resumed (``reopen``).
_ENDINGS = (*_STATUSES[1:], "interrupted")
#: The endings a run may be reopened from.
_REOPENABLE = ("interrupted", "failed")


def code_version(cwd: str | None = None) -> str:
    """The git commit of ``cwd`` (``-dirty`` when it has changes), or '' outside git."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        if sha.returncode != 0:
            return ""
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return ""


class Runs:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def start(
        self,
        project: str,
        name: str,
        *,
        params: Mapping[str, Any] | None = None,
        datasets: Sequence[str] = (),
        base_model: str | None = None,
        kind: str = "training",
        code: str | None = None,
    ) -> ActiveRun:
        """Open a run; use it as a context manager to have it finished (or failed) for you."""
        check_resource_name(name, kind="run name")
        with self._ctx.store.session() as s:
            me = self._ctx.me(s)
            proj = self._ctx.project(s, me, project, Action.REGISTRY_WRITE)
            lock_project(s, proj.id)
            parents = [
                ("dataset", resolve(s, proj.id, Ref.parse(d, kind="dataset"))) for d in datasets
            ]
            if base_model is not None:
                parents.append(("model", resolve(s, proj.id, Ref.parse(base_model, kind="model"))))
            row = t.Run(
                uid=secrets.token_hex(6),
                project_id=proj.id,
                name=name,
                kind=kind,
                params=dict(params or {}),
                code_version=code_version() if code is None else code,
                created_by=me.label,
            )
            s.add(row)
            s.flush()
            for parent in parents:
                relation = "input" if parent[0] == "dataset" else "base model"
                add_edge(s, proj.id, parent, ("run", row), relation)
            self._ctx.audit(s, me, "run.start", project=proj, resource=f"run:{row.uid}", name=name)
            return ActiveRun(self, project, row.uid)

    def log(
        self,
        project: str,
        run: str,
        metrics: Mapping[str, float],
        *,
        step: int,
        replace: bool = False,
    ) -> None:
        """Record metric values at a step; a (metric, step) pair is written once, unless
        ``replace`` (a resumed run logging again the steps after its last checkpoint)."""
        with self._ctx.store.session() as s:
            row = self._row(s, project, run, Action.REGISTRY_WRITE)
            if row.status != "running":
                raise ConflictError(f"run {run} is {row.status}: metrics go to running runs")
            for key, value in metrics.items():
                check_metric_name(key)
                point = s.get(t.RunMetric, (row.id, key, step))
                if point is None:
                    s.add(t.RunMetric(run_id=row.id, key=key, step=int(step), value=float(value)))
                elif replace:
                    point.value, point.ts = float(value), t.utcnow()
                else:
                    raise ConflictError(
                        f"run {run} already has {key} at step {step}: pass replace=True to "
                        "overwrite it (a resumed run logging its steps again)"
                    )

    def finish(self, project: str, run: str, *, status: str = "finished") -> RunInfo:
        """End a running run: finished, failed, cancelled, or interrupted (killed; it can
        be resumed with :meth:`reopen`)."""
        if status not in _ENDINGS:
            raise ValidationError(f"a run ends as one of {', '.join(_ENDINGS)}, not {status!r}")
        with self._ctx.store.session() as s:
            me = self._ctx.me(s)
            proj = self._ctx.project(s, me, project, Action.REGISTRY_WRITE)
            row = resolve(s, proj.id, Ref("run", run))
            if row.status != "running":
                raise ConflictError(f"run {run} has already ended as {row.status}")
            row.status, row.ended_at = status, t.utcnow()
            self._ctx.audit(s, me, "run.finish", project=proj, resource=f"run:{run}", status=status)
            return self._info(s, row)

    def reopen(self, project: str, run: str) -> RunInfo:
        """Put an interrupted or failed run back to running (a training resumed from its
        last checkpoint); its metrics, params and inputs stay."""
        with self._ctx.store.session() as s:
            me = self._ctx.me(s)
            proj = self._ctx.project(s, me, project, Action.REGISTRY_WRITE)
            row = resolve(s, proj.id, Ref("run", run))
            if row.status not in _REOPENABLE:
                todo = (
                    "it is still running: log to it, or finish it first"
                    if row.status == "running"
                    else "only interrupted or failed runs resume: start a new run"
                )
                raise ConflictError(f"run {run} cannot be reopened: it is {row.status}; {todo}")
            before = row.status
            row.status, row.ended_at = "running", None
            self._ctx.audit(s, me, "run.reopen", project=proj, resource=f"run:{run}", was=before)
            return self._info(s, row)

    def get(self, project: str, run: str) -> RunInfo:
        with self._ctx.store.session() as s:
            return self._info(s, self._row(s, project, run, Action.REGISTRY_READ))

    def list(
        self,
        project: str,
        *,
        name: str | None = None,
        status: str | None = None,
        limit: int | None = None,
    ) -> builtins.list[RunInfo]:
        """Runs newest first; with ``limit``, only the ``limit`` newest (:meth:`count` says
        how many match in all). Metrics and inputs are read for all of them at once."""
        check_limit(limit)
        with self._ctx.store.session() as s:
            me = self._ctx.me(s)
            proj = self._ctx.project(s, me, project, Action.REGISTRY_READ)
            query = self._matching(select(t.Run), proj.id, name, status)
            rows = s.scalars(query.order_by(t.Run.id.desc()).limit(limit)).all()
            return self._infos(s, rows)

    def count(self, project: str, *, name: str | None = None, status: str | None = None) -> int:
        """How many runs match: beside a ``list(limit=...)``."""
        with self._ctx.store.session() as s:
            proj = self._ctx.project(s, self._ctx.me(s), project, Action.REGISTRY_READ)
            query = self._matching(select(func.count()).select_from(t.Run), proj.id, name, status)
            return int(s.scalar(query) or 0)

    @staticmethod
    def _matching(query: Any, project_id: int, name: str | None, status: str | None) -> Any:
        query = query.where(t.Run.project_id == project_id)
        if name is not None:
            query = query.where(t.Run.name == name)
        if status is not None:
            query = query.where(t.Run.status == status)
        return query

    def metrics(
        self, project: str, run: str, *, key: str | None = None
    ) -> builtins.list[MetricPoint]:
        """Every recorded value, by metric and step."""
        with self._ctx.store.session() as s:
            row = self._row(s, project, run, Action.REGISTRY_READ)
            query = select(t.RunMetric).where(t.RunMetric.run_id == row.id)
            if key is not None:
                query = query.where(t.RunMetric.key == key)
            points = s.scalars(query.order_by(t.RunMetric.key, t.RunMetric.step))
            return [MetricPoint(key=p.key, step=p.step, value=p.value, ts=p.ts) for p in points]

    def _row(self, s: Session, project: str, run: str, action: Action) -> t.Run:
        me = self._ctx.me(s)
        proj = self._ctx.project(s, me, project, action)
        row: t.Run = resolve(s, proj.id, Ref("run", run))
        return row

    def _info(self, s: Session, row: t.Run) -> RunInfo:
        return self._infos(s, [row])[0]

    def _infos(self, s: Session, rows: Sequence[t.Run]) -> builtins.list[RunInfo]:
        ids = [row.id for row in rows]
        metrics, inputs = latest_metrics(s, ids), inputs_of(s, "run", ids)
        return [
            RunInfo(
                id=row.uid,
                name=row.name,
                kind=row.kind,
                status=row.status,
                params=dict(row.params),
                code_version=row.code_version,
                started_at=row.started_at,
                ended_at=row.ended_at,
                created_by=row.created_by,
                metrics=metrics[row.id],
                inputs=inputs[row.id],
            )
            for row in rows
        ]


class ActiveRun:
    """A run in progress: ``log`` metrics, then ``finish`` (or leave the ``with`` block:
    finished, failed on an exception, interrupted on Ctrl-C)."""

    def __init__(self, runs: Runs, project: str, run_id: str) -> None:
        self._runs = runs
        self.project = project
        self.id = run_id
        self.ref = f"run:{run_id}"

    def log(self, metrics: Mapping[str, float], *, step: int, replace: bool = False) -> None:
        self._runs.log(self.project, self.id, metrics, step=step, replace=replace)

    def finish(self, status: str = "finished") -> RunInfo:
        return self._runs.finish(self.project, self.id, status=status)

    def reopen(self) -> RunInfo:
        """Resume an interrupted or failed run (see :meth:`Runs.reopen`)."""
        return self._runs.reopen(self.project, self.id)

    def info(self) -> RunInfo:
        return self._runs.get(self.project, self.id)

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runs.get(self.project, self.id).status == "running":
            if exc_type is None:
                self.finish("finished")
            elif issubclass(exc_type, KeyboardInterrupt):  # Ctrl-C: resumable
                self.finish("interrupted")
            else:
                self.finish("failed")
