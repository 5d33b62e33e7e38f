"""Shadow traffic, judged: the pairs of answers the gateway recorded for a deployment with a
shadow target become two eval runs, "primary" and "shadow", over the same rows, compared.

The rows are the recorded pairs whose shadow answered and whose texts were kept (the
project's ``prompt_logging``); the others are counted as skipped, with the reason. They are
registered as a dataset version ``shadow-<deployment>`` (id: the request id; messages: the
request as the gateway kept it, DLP's pseudonyms in place of personal data; reference: the
caller's answer) and a suite version of the same name. The answers are the recorded texts:
nothing is asked again upstream. Only judges are called, through the gateway with the
project's key (quotas and the ledger apply to judging):

- ``embedding_similarity`` (and any reference metric) scores each answer against the
  caller's: the primary run is the ceiling, the shadow's distance from it is the news;
- ``judge=JUDGE`` adds an ``llm_judge`` to both runs and, to the shadow run, a
  ``pairwise_judge`` with the primary run as its baseline (0.5: no better, no worse).

Tokens, cost and latency are compared too: the caller's from the usage ledger, the
shadow's from its row (which keeps prompt and completion tokens together: the shadow's
completion tokens are taken as its total less the caller's prompt tokens, the shadow got
the same prompt). ``genai eval report PRIMARY SHADOW`` renders the pair like any two runs.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from eval._aggregate import compare_runs, summarize
from eval._metric import Metric
from eval._progress import EvalProgress
from eval._run import (
    EvalJob,
    build_metrics,
    check_key,
    flat_metrics,
    metric_fingerprint,
    run_sync,
)
from eval._scoring import score_all
from eval._stats import Comparison
from eval._suite import MetricSpec, Suite, rows_of
from eval._summary import RowResult
from eval._types import Answer, EvalRow
from genai.errors import UsageError
from genai.registry import DeploymentRevision, EvalResultRecord, SuiteVersion

if TYPE_CHECKING:
    from genai import Client
    from genai.tenancy import ShadowRow

__all__ = ["ShadowJob", "shadow"]


#: Why a recorded pair is not evaluated.
LOGGING_OFF = "prompt_logging was off"
SHADOW_FAILED = "the shadow failed"
NO_QUESTION = "the request has no chat or completion text"
_JUDGED = ("llm_judge", "pairwise_judge")
_ROLES = ("system", "user", "assistant", "developer")
_CONCURRENCY = 4


@dataclass(frozen=True)
class ShadowJob:
    """Two eval runs over the same recorded pairs, and their paired comparisons
    (``shadow`` against ``primary`` as the baseline)."""

    deployment: str
    revision: str  # the deployment revision the runs are linked to (the current one)
    dataset: str
    suite: str
    primary: EvalJob
    shadow: EvalJob
    comparisons: list[Comparison]
    pairs: int
    skipped: dict[str, int]  # reason -> pairs


@dataclass(frozen=True)
class _Pair:
    row: dict[str, Any]  # the dataset row
    recorded: ShadowRow


def shadow(
    client: Client,
    project: str,
    deployment: str,
    *,
    gateway: str,
    api_key: str,
    metrics: Sequence[str] = ("embedding_similarity",),
    judge: str | None = None,
    since: datetime | None = None,
    limit: int | None = 200,
    progress: bool = False,
) -> ShadowJob:
    """Evaluate the shadow answers of ``deployment`` (the newest ``limit`` pairs recorded
    at or after ``since``) against its callers' answers: two eval runs, compared. ``judge``
    names a judge deployment asked through ``gateway`` with ``api_key`` (a key of
    ``project``); without one only ``metrics`` score (no model is asked)."""
    recorded = client.usage.shadow_results(project, deployment, since=since, limit=limit)
    revision = client.registry.deployments.get(project, deployment)
    check_key(client, project, api_key)
    pairs, skipped = _pairs(recorded)
    if not pairs:
        raise UsageError(_nothing(deployment, len(recorded), skipped))
    spec = _suite(f"shadow-{deployment}", metrics, judge)
    build_metrics(_primary(spec), settings=client.settings, gateway=gateway, api_key=api_key)
    spec, version = _register(client, project, spec, pairs)
    runs = _Runs(
        client=client,
        project=project,
        version=version,
        revision=revision,
        rows=rows_of(client.registry.datasets.rows(project, version.dataset)),
        gateway=gateway,
        api_key=api_key,
        progress=progress,
    )
    by_id = {p.recorded.request_id: p.recorded for p in pairs}
    noted = {"judge": judge, "skipped": skipped}
    first = runs.record(
        _primary(spec),
        {rid: _primary_answer(r) for rid, r in by_id.items()},
        side="primary",
        targets={r.primary_target for r in by_id.values()},
        noted=noted,
    )
    second = runs.record(
        spec,
        {rid: _shadow_answer(r) for rid, r in by_id.items()},
        side="shadow",
        targets={r.shadow_target for r in by_id.values()},
        noted={**noted, "baseline": first.eval.id},
        baseline=first,
    )
    return ShadowJob(
        deployment=deployment,
        revision=revision.ref,
        dataset=version.dataset,
        suite=version.ref,
        primary=first,
        shadow=second,
        comparisons=compare_runs(first.summary, second.summary),
        pairs=len(pairs),
        skipped=skipped,
    )


def _register(
    client: Client, project: str, spec: Suite, pairs: Sequence[_Pair]
) -> tuple[Suite, SuiteVersion]:
    """The pairs as a dataset version, and the suite version over it."""
    data = client.registry.datasets.register(
        project,
        spec.name,
        [p.row for p in pairs],
        description=f"shadow pairs of deployment {spec.name.removeprefix('shadow-')}",
    )
    spec = spec.model_copy(update={"dataset": data.ref})
    version = client.registry.suites.register(
        project,
        spec.name,
        dataset=data.ref,
        definition=spec.definition(),
        description=spec.description,
    )
    return spec, version


# ------------------------------------------------------------------ the rows


def _pairs(recorded: Sequence[ShadowRow]) -> tuple[list[_Pair], dict[str, int]]:
    """The pairs to evaluate (one per request), and the skipped ones' reasons."""
    pairs: dict[str, _Pair] = {}
    skipped: Counter[str] = Counter()
    for r in recorded:
        if r.status != "ok":
            skipped[SHADOW_FAILED] += 1
            continue
        if not (r.prompt_text or r.primary_text or r.shadow_text):
            skipped[LOGGING_OFF] += 1
            continue
        messages = messages_of(r.prompt_text)
        if not messages:
            skipped[NO_QUESTION] += 1
            continue
        row = {
            "id": r.request_id,
            "messages": messages,
            "reference": r.primary_text,
            "primary_target": r.primary_target,
            "shadow_target": r.shadow_target,
        }
        pairs[r.request_id] = _Pair(row=row, recorded=r)
    return list(pairs.values()), dict(skipped)


def messages_of(prompt_text: str) -> list[dict[str, str]]:
    """The chat messages of a kept request (its ``messages``, or its completion ``prompt``
    as one user message); parts of a message are joined by their text; messages of other
    roles (tool results) and without text are left out. Empty when there is nothing."""
    try:
        kept = json.loads(prompt_text) if prompt_text else {}
    except ValueError:
        return []
    if not isinstance(kept, dict):
        return []
    if isinstance(kept.get("messages"), list):
        out = []
        for m in kept["messages"]:
            if isinstance(m, dict) and m.get("role") in _ROLES:
                text = _text(m.get("content"))
                if text:
                    out.append({"role": str(m["role"]), "content": text})
        return out
    prompt = _text(kept.get("prompt"))
    return [{"role": "user", "content": prompt}] if prompt else []


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [
            p if isinstance(p, str) else p.get("text") if isinstance(p, dict) else None
            for p in content
        ]
        return "\n".join(p for p in parts if isinstance(p, str))
    return ""


def _nothing(deployment: str, recorded: int, skipped: dict[str, int]) -> str:
    if not recorded:
        return (
            f"deployment {deployment!r} has no shadow answers recorded (in the window asked): "
            "give it a shadow target (`shadow:` in its spec) and send it traffic first"
        )
    reasons = ", ".join(f"{why}: {n}" for why, n in sorted(skipped.items()))
    hint = (
        "; a project owner turns prompt logging on (client.projects.set_option(PROJECT, "
        "'prompt_logging', True)) so the gateway keeps the texts of new pairs"
        if LOGGING_OFF in skipped
        else ""
    )
    return f"none of the {recorded} shadow pairs of {deployment!r} can be judged ({reasons}){hint}"


def _suite(name: str, metrics: Sequence[str], judge: str | None) -> Suite:
    """The suite both runs share (its dataset is set once the pairs are registered)."""
    names = list(dict.fromkeys(metrics))
    if judge is not None:
        names += [m for m in _JUDGED if m not in names]
    specs = []
    for m in names:
        if m in _JUDGED and judge is None:
            raise UsageError(f"metric {m} asks a judge: name one (--judge DEPLOYMENT)")
        specs.append(
            MetricSpec.model_validate({"name": m, **({"judge": judge} if m in _JUDGED else {})})
        )
    return Suite(
        name=name,
        dataset="",
        metrics=tuple(specs),
        concurrency=_CONCURRENCY,
        description="a deployment's shadow answers against its callers' answers",
    )


def _primary(spec: Suite) -> Suite:
    """The suite as the primary run measures it: no pairwise judge (it is the baseline)."""
    return spec.model_copy(
        update={"metrics": tuple(m for m in spec.metrics if m.name != _JUDGED[1])}
    )


def _primary_answer(r: ShadowRow) -> Answer:
    return Answer(
        output=r.primary_text,
        latency_ms=r.primary_latency_ms,
        prompt_tokens=r.primary_prompt_tokens or 0,
        completion_tokens=r.primary_completion_tokens or 0,
        cost_usd=r.primary_cost_usd,
        request_id=r.request_id,
    )


def _shadow_answer(r: ShadowRow) -> Answer:
    prompt = r.primary_prompt_tokens or 0
    if prompt > r.shadow_tokens:
        prompt = 0
    return Answer(
        output=r.shadow_text,
        latency_ms=r.shadow_latency_ms,
        prompt_tokens=prompt,
        completion_tokens=r.shadow_tokens - prompt,
        cost_usd=r.shadow_cost_usd,
        request_id=r.request_id,
    )


# ------------------------------------------------------------------ one run


@dataclass(frozen=True)
class _Runs:
    """What both runs share: the suite version, the deployment revision, the rows."""

    client: Client
    project: str
    version: SuiteVersion
    revision: DeploymentRevision
    rows: Sequence[EvalRow]
    gateway: str
    api_key: str
    progress: bool

    def record(
        self,
        spec: Suite,
        answers: dict[str, Answer],
        *,
        side: str,
        targets: set[str],
        noted: dict[str, Any],
        baseline: EvalJob | None = None,
    ) -> EvalJob:
        """One eval run of the recorded ``answers`` (by row id), scored and kept."""
        config = {
            "suite": self.version.ref,
            "target": f"{self.revision.name}:{'+'.join(sorted(targets))}",
            "source": "shadow",
            "side": side,
            "deployment": self.revision.ref,
            "gateway": self.gateway,
            "repeats": 1,
            **noted,
        }
        metrics = build_metrics(
            spec,
            settings=self.client.settings,
            gateway=self.gateway,
            api_key=self.api_key,
            baseline={r.row.id: r.answer for r in baseline.results} if baseline else None,
            baseline_id=baseline.eval.id if baseline else None,
        )
        evals = self.client.registry.evals
        info = evals.record(
            self.project,
            spec.name,
            metrics={},
            inputs=[self.version.ref, self.version.dataset, self.revision.ref],
            config=config,
            status="running",
        )
        try:
            results = run_sync(
                lambda: _score(self.rows, answers, metrics, side=side, progress=self.progress)
            )
            fps = {m.name: _fp(spec, m, baseline) for m in metrics}
            evals.add_results(self.project, info.id, [_result(r, side, fps) for r in results])
        except BaseException:
            evals.finish(self.project, info.id, status="failed")
            raise
        summary = summarize(
            eval_id=info.id,
            suite=self.version.ref,
            target=config["target"],
            status="finished",
            repeats=1,
            results=results,
            metrics=metrics,
        )
        done = evals.finish(self.project, info.id, metrics=flat_metrics(summary))
        return EvalJob(eval=done, summary=summary, results=results, suite=spec)


async def _score(
    rows: Sequence[EvalRow],
    answers: dict[str, Answer],
    metrics: Sequence[Metric],
    *,
    side: str,
    progress: bool,
) -> list[RowResult]:
    gate = asyncio.Semaphore(_CONCURRENCY)
    bar = EvalProgress(enabled=progress, total=len(rows), title=f"shadow · {side}")

    async def one(row: EvalRow) -> RowResult:
        async with gate:
            answer = answers[row.id]
            result = RowResult(
                row=row, repeat=0, answer=answer, scores=await score_all(metrics, row, answer)
            )
            bar.advance(result)
            return result

    with bar:
        return list(await asyncio.gather(*(one(row) for row in rows)))


def _fp(spec: Suite, metric: Metric, baseline: EvalJob | None) -> str:
    if baseline is None or not getattr(metric, "uses_baseline", False):
        return metric_fingerprint(spec, metric.name)
    return metric_fingerprint(spec, metric.name) + f"|baseline={baseline.eval.id}"


def _result(result: RowResult, side: str, fps: dict[str, str]) -> EvalResultRecord:
    key = hashlib.sha256(f"shadow|{side}|{result.row.id}".encode()).hexdigest()
    return EvalResultRecord(
        row_index=result.row.index,
        repeat=0,
        cache_key=key,
        answer=result.answer.model_dump(mode="json", exclude={"cached"}),
        scores={
            name: {"value": v.model_dump(mode="json"), "spec": fps.get(name, "")}
            for name, v in result.scores.items()
        },
    )
