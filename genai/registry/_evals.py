"""Evaluation suites (versioned) and eval runs with their per-row results.

The registry keeps what ``eval`` computes; it does not evaluate. A suite version pins a
dataset version and a definition document; an eval run records its inputs (deployment
revision, adapter, prompt and knowledge-base versions, suite) as lineage parents, its
per-row results as they come (so an interrupted run resumes), and its summary metrics.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import secrets
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, insert, or_, select
from sqlalchemy.orm import Session

from genai._names import check_resource_name
from genai.errors import ConflictError, ValidationError
from genai.registry._batch import check_limit, inputs_of
from genai.registry._catalog import common_fields
from genai.registry._refs import Ref, add_edge, label, lock_project, resolve
from genai.registry._types import EvalResultRecord, EvalRunInfo, SuiteVersion
from genai.registry._versioned import VersionedAPI
from genai.store import schema as t
from genai.tenancy._rbac import Action

if TYPE_CHECKING:
    from genai._context import Context

__all__ = ["Evals", "Suites"]

_STATUSES = ("running", "finished", "failed", "cancelled", "interrupted")
_REOPENABLE = ("interrupted", "failed")


class Suites(VersionedAPI[SuiteVersion]):
    """Eval suites: a dataset version plus a definition (metrics, thresholds, options)."""

    kind = "suite"

    def register(
        self,
        project: str,
        name: str,
        *,
        dataset: str,
        definition: Mapping[str, Any],
        description: str = "",
    ) -> SuiteVersion:
        """A new version, unless a version of ``name`` has this content (then that one)."""
        body = json.loads(json.dumps(dict(definition)))  # a JSON document, or a TypeError
        with self._writing(project) as w:
            data = w.resolve(dataset, "dataset")
            digest = hashlib.sha256(
                json.dumps({"dataset": data.id, **body}, sort_keys=True).encode()
            ).hexdigest()
            same = w.session.scalars(
                select(t.EvalSuite).where(
                    t.EvalSuite.project_id == w.project.id,
                    t.EvalSuite.name == name,
                    t.EvalSuite.content_hash == digest,
                )
            ).one_or_none()
            if same is not None:
                return self._info(w.session, same, [])
            row = self._add_version(
                w,
                name,
                lambda _: t.EvalSuite(
                    dataset_id=data.id,
                    definition=body,
                    content_hash=digest,
                    description=description,
                ),
                dataset=label("dataset", data),
            )
            add_edge(w.session, w.project.id, ("dataset", data), ("suite", row), "evaluates")
            return self._info(w.session, row, [])

    def _info(self, session: Session, row: t.EvalSuite, aliases: list[str]) -> SuiteVersion:
        data = session.get(t.Dataset, row.dataset_id)
        return SuiteVersion(
            **common_fields(self.kind, row, aliases),
            dataset=label("dataset", data) if data is not None else "dataset:(deleted)",
            definition=dict(row.definition),
            content_hash=row.content_hash,
        )


class Evals:
    """Evaluation runs: a suite's metrics against the artifacts it evaluated."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def record(
        self,
        project: str,
        suite: str,
        *,
        metrics: Mapping[str, Any],
        inputs: Sequence[str] = (),
        config: Mapping[str, Any] | None = None,
        status: str = "finished",
    ) -> EvalRunInfo:
        """Record an evaluation; ``inputs`` are the references it evaluated (deployment,
        adapter, prompt version, dataset, suite…) and become its lineage parents. With
        ``status="running"`` it is started: add results, then :meth:`finish` it."""
        check_resource_name(suite, kind="suite name")
        _check_status(status)
        with self._ctx.store.session() as s:
            me = self._ctx.me(s)
            proj = self._ctx.project(s, me, project, Action.REGISTRY_WRITE)
            lock_project(s, proj.id)
            parents = [(ref.kind, resolve(s, proj.id, ref)) for ref in map(Ref.parse, inputs)]
            row = t.EvalRun(
                uid=secrets.token_hex(6),
                project_id=proj.id,
                suite=suite,
                status=status,
                metrics=dict(metrics),
                config=dict(config or {}),
                ended_at=None if status == "running" else t.utcnow(),
                created_by=me.label,
            )
            s.add(row)
            s.flush()
            for parent in parents:
                add_edge(s, proj.id, parent, ("eval", row), "evaluated")
            self._ctx.audit(
                s, me, "eval.record", project=proj, resource=f"eval:{row.uid}", suite=suite
            )
            return self._info(s, row)

    def link(self, project: str, eval_id: str, inputs: Sequence[str]) -> EvalRunInfo:
        """Add lineage parents found while the run went (the knowledge-base and prompt
        versions a knowledge bot answered with)."""
        with self._ctx.store.session() as s:
            proj, row = self._writable(s, project, eval_id)
            for ref in map(Ref.parse, inputs):
                parent = (ref.kind, resolve(s, proj.id, ref))
                add_edge(s, proj.id, parent, ("eval", row), "evaluated")
            return self._info(s, row)

    def link_promoted(self, project: str, eval_id: str, ref: str) -> str:
        """Record eval run ``eval_id`` as the evidence a version was promoted on (a deployment
        revision that moved traffic): a lineage edge eval → ``ref`` (relation ``promoted``)
        and an ``eval.promote`` audit event. Both must be of ``project``; the caller needs
        the right to change what ``ref`` names. Returns the version's reference."""
        target = Ref.parse(ref)
        action = Action.DEPLOYMENT_WRITE if target.kind == "deployment" else Action.REGISTRY_WRITE
        with self._ctx.store.session() as s:
            me = self._ctx.me(s)
            proj = self._ctx.project(s, me, project, action)
            row: t.EvalRun = resolve(s, proj.id, Ref("eval", eval_id.removeprefix("eval:")))
            child = resolve(s, proj.id, target)
            add_edge(s, proj.id, ("eval", row), (target.kind, child), "promoted")
            promoted = label(target.kind, child)
            self._ctx.audit(
                s,
                me,
                "eval.promote",
                project=proj,
                resource=promoted,
                evidence=f"eval:{row.uid}",
            )
            return promoted

    def add_results(self, project: str, eval_id: str, results: Sequence[EvalResultRecord]) -> None:
        """Keep results of a running eval run, in one transaction; a row × repeat written
        again replaces the earlier one (a resumed run rewrites nothing it finished, but may
        retry a row)."""
        if not results:
            return
        latest = {(r.row_index, r.repeat): r for r in results}  # the last of a pair wins
        with self._ctx.store.session() as s:
            proj, row = self._writable(s, project, eval_id)
            if row.status != "running":
                raise ConflictError(f"eval {eval_id} has ended as {row.status}: reopen it first")
            indices = sorted({i for i, _ in latest})
            existing: dict[tuple[int, int], t.EvalResult] = {}
            for start in range(0, len(indices), 500):
                query = select(t.EvalResult).where(
                    t.EvalResult.eval_run_id == row.id,
                    t.EvalResult.row_index.in_(indices[start : start + 500]),
                )
                existing |= {(r.row_index, r.repeat): r for r in s.scalars(query)}
            new: builtins.list[dict[str, Any]] = []
            for pair, result in latest.items():
                found = existing.get(pair)
                if found is None:
                    new.append(
                        {
                            "project_id": proj.id,
                            "eval_run_id": row.id,
                            "row_index": result.row_index,
                            "repeat": result.repeat,
                            "cache_key": result.cache_key,
                            "answer": dict(result.answer),
                            "scores": dict(result.scores),
                        }
                    )
                else:
                    found.cache_key = result.cache_key
                    found.answer = dict(result.answer)
                    found.scores = dict(result.scores)
            if new:
                s.execute(insert(t.EvalResult), new)

    def results(self, project: str, eval_id: str) -> builtins.list[EvalResultRecord]:
        """Every result of a run, by row and repeat."""
        with self._ctx.store.session() as s:
            me = self._ctx.me(s)
            proj = self._ctx.project(s, me, project, Action.REGISTRY_READ)
            row = resolve(s, proj.id, Ref("eval", eval_id))
            query = (
                select(t.EvalResult)
                .where(t.EvalResult.eval_run_id == row.id)
                .order_by(t.EvalResult.row_index, t.EvalResult.repeat)
            )
            return [_record(r) for r in s.scalars(query)]

    def cached(self, project: str, keys: Collection[str]) -> dict[str, EvalResultRecord]:
        """The newest result of the project for each cache key found (any eval run), failed
        answers left out: one query for the newest ids, one for those rows."""
        out: dict[str, EvalResultRecord] = {}
        wanted = list(dict.fromkeys(keys))
        error = t.EvalResult.answer["error"].as_string()
        with self._ctx.store.session() as s:
            me = self._ctx.me(s)
            proj = self._ctx.project(s, me, project, Action.REGISTRY_READ)
            for start in range(0, len(wanted), 500):
                newest = (
                    select(func.max(t.EvalResult.id))
                    .where(
                        t.EvalResult.project_id == proj.id,
                        t.EvalResult.cache_key.in_(wanted[start : start + 500]),
                        or_(error.is_(None), error == ""),
                    )
                    .group_by(t.EvalResult.cache_key)
                )
                query = select(t.EvalResult).where(t.EvalResult.id.in_(newest))
                for r in s.scalars(query):
                    if not r.answer.get("error"):
                        out[r.cache_key] = _record(r)
        return out

    def finish(
        self,
        project: str,
        eval_id: str,
        *,
        metrics: Mapping[str, Any] | None = None,
        status: str = "finished",
    ) -> EvalRunInfo:
        """End a running eval run with its summary metrics."""
        _check_status(status)
        if status == "running":
            raise ValidationError("an eval run ends as finished, failed, cancelled or interrupted")
        with self._ctx.store.session() as s:
            proj, row = self._writable(s, project, eval_id)
            if row.status != "running":
                raise ConflictError(f"eval {eval_id} has already ended as {row.status}")
            row.status, row.ended_at = status, t.utcnow()
            if metrics is not None:
                row.metrics = json.loads(json.dumps(dict(metrics)))
            me = self._ctx.me(s)
            self._ctx.audit(
                s, me, "eval.finish", project=proj, resource=f"eval:{eval_id}", status=status
            )
            return self._info(s, row)

    def reopen(self, project: str, eval_id: str) -> EvalRunInfo:
        """Put an interrupted or failed eval run back to running, to resume it."""
        with self._ctx.store.session() as s:
            proj, row = self._writable(s, project, eval_id)
            if row.status not in _REOPENABLE:
                raise ConflictError(
                    f"eval {eval_id} cannot be resumed: it is {row.status}; only interrupted "
                    "or failed eval runs resume (start a new run)"
                )
            row.status, row.ended_at = "running", None
            me = self._ctx.me(s)
            self._ctx.audit(s, me, "eval.reopen", project=proj, resource=f"eval:{eval_id}")
            return self._info(s, row)

    def get(self, project: str, eval_id: str) -> EvalRunInfo:
        with self._ctx.store.session() as s:
            me = self._ctx.me(s)
            proj = self._ctx.project(s, me, project, Action.REGISTRY_READ)
            return self._info(s, resolve(s, proj.id, Ref("eval", eval_id)))

    def list(
        self, project: str, *, suite: str | None = None, limit: int | None = None
    ) -> builtins.list[EvalRunInfo]:
        """Eval runs newest first; with ``limit``, only the ``limit`` newest (:meth:`count`
        says how many in all). Their inputs are read for all of them at once."""
        check_limit(limit)
        with self._ctx.store.session() as s:
            me = self._ctx.me(s)
            proj = self._ctx.project(s, me, project, Action.REGISTRY_READ)
            query = select(t.EvalRun).where(t.EvalRun.project_id == proj.id)
            if suite is not None:
                query = query.where(t.EvalRun.suite == suite)
            rows = s.scalars(query.order_by(t.EvalRun.id.desc()).limit(limit)).all()
            inputs = inputs_of(s, "eval", [row.id for row in rows])
            return [self._info(s, row, inputs[row.id]) for row in rows]

    def count(self, project: str, *, suite: str | None = None) -> int:
        """How many eval runs there are (of ``suite``): beside a ``list(limit=...)``."""
        with self._ctx.store.session() as s:
            proj = self._ctx.project(s, self._ctx.me(s), project, Action.REGISTRY_READ)
            query = select(func.count()).select_from(t.EvalRun)
            query = query.where(t.EvalRun.project_id == proj.id)
            if suite is not None:
                query = query.where(t.EvalRun.suite == suite)
            return int(s.scalar(query) or 0)

    def _writable(self, s: Session, project: str, eval_id: str) -> tuple[t.Project, t.EvalRun]:
        me = self._ctx.me(s)
        proj = self._ctx.project(s, me, project, Action.REGISTRY_WRITE)
        row: t.EvalRun = resolve(s, proj.id, Ref("eval", eval_id))
        return proj, row

    def _info(
        self, s: Session, row: t.EvalRun, inputs: builtins.list[str] | None = None
    ) -> EvalRunInfo:
        return EvalRunInfo(
            id=row.uid,
            suite=row.suite,
            status=row.status,
            metrics=dict(row.metrics),
            config=dict(row.config),
            inputs=inputs_of(s, "eval", [row.id])[row.id] if inputs is None else inputs,
            started_at=row.started_at,
            ended_at=row.ended_at,
            created_by=row.created_by,
        )


def _check_status(status: str) -> None:
    if status not in _STATUSES:
        raise ValidationError(f"status must be one of {', '.join(_STATUSES)}", field="status")


def _record(row: t.EvalResult) -> EvalResultRecord:
    return EvalResultRecord(
        row_index=row.row_index,
        repeat=row.repeat,
        cache_key=row.cache_key,
        answer=dict(row.answer),
        scores=dict(row.scores),
    )
