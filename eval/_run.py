"""Eval runs: every row of a suite, R times, through the gateway, scored, kept, resumable.

:func:`run` registers the suite version (and the dataset, when the suite names a file),
starts an eval run in the registry linked to the suite, the dataset and the deployment
revision, and answers every row × repeat with bounded concurrency. Results are written as
they come, a batch per transaction (when 32 wait, and every 2 s; one batch at a time; the
rest on finish, Ctrl-C or SIGTERM), so an interrupted run keeps what it finished and
:func:`resume` does only the rest (a crash loses at most the batch not yet written).

An identical earlier answer of the project — same deployment revision and knowledge-base
versions, same request, same repeat number — is reused from the registry (no upstream
call, identical scores), unless ``fresh=True``. Metric values are reused only when the
metric's spec is the same.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import json
import signal
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from eval._aggregate import summarize
from eval._load import find_run, load_run
from eval._metric import METRICS, Metric, MetricEnv
from eval._progress import EvalProgress
from eval._scoring import score_all
from eval._suite import Suite, load_suite, rows_of
from eval._summary import RowResult, RunSummary
from eval._target import GatewayTarget, split_target
from eval._types import Answer, EvalRow, MetricValue
from genai.errors import ConflictError, NotFoundError, UsageError
from genai.registry import EvalResultRecord, EvalRunInfo, SuiteVersion

if TYPE_CHECKING:
    from genai import Client
    from genai.settings import Settings

__all__ = ["EvalJob", "resume", "run"]

T = TypeVar("T")

_FLUSH_EVERY = 32  # results written in one transaction (see the module's docstring)
_FLUSH_AFTER_S = 2.0
_ALWAYS = ("latency", "cost", "tokens")


@dataclass(frozen=True)
class EvalJob:
    """A finished (or interrupted) eval run: its registry entry, summary and results."""

    eval: EvalRunInfo
    summary: RunSummary
    results: list[RowResult]
    suite: Suite

    def _repr_html_(self) -> str:
        """A notebook shows the run as its report, rows included."""
        from eval._report import notebook_html

        s = self.summary
        return notebook_html(
            [s], rows={s.id: self.results}, title=f"eval:{s.id} · {s.suite} · {s.target}"
        )


def run(
    client: Client,
    project: str,
    suite: Suite | str | Path,
    *,
    target: str,
    gateway: str,
    api_key: str,
    repeats: int | None = None,
    fresh: bool = False,
    gateway_cache: bool = False,
    baseline: str | None = None,
    progress: bool = False,
) -> EvalJob:
    """Evaluate ``target`` (``DEPLOYMENT[:ADAPTER]``) on ``suite`` through the gateway at
    ``gateway`` (its ``/v1`` URL) with ``api_key``, a key of ``project``. ``baseline`` (an
    eval id, or a target: its newest run of the suite) is the run a pairwise judge compares
    each answer with."""
    spec = suite if isinstance(suite, Suite) else load_suite(suite)
    if repeats is not None:
        spec = spec.model_copy(update={"repeats": repeats})
    check_key(client, project, api_key)
    version = _register(client, project, spec)
    deployment, _adapter = split_target(target)
    revision = client.registry.deployments.get(project, deployment)
    base = find_run(client, project, spec.name, baseline) if baseline is not None else None
    config = {
        "suite": version.ref,
        "target": target,
        "gateway": gateway,
        "repeats": spec.repeats,
        "fingerprint": _fingerprint(client, project, revision.ref, revision.spec),
        "kbs": _knowledge_bases(revision.spec),
        "gateway_cache": gateway_cache,
        "fresh": fresh,
        "baseline": base.id if base is not None else None,
    }
    info = client.registry.evals.record(
        project,
        spec.name,
        metrics={},
        inputs=[version.ref, version.dataset, revision.ref],
        config=config,
        status="running",
    )
    return _execute(
        client, project, info, spec, version, gateway=gateway, api_key=api_key, progress=progress
    )


def resume(
    client: Client,
    project: str,
    eval_id: str,
    *,
    gateway: str,
    api_key: str,
    progress: bool = False,
) -> EvalJob:
    """Go on with an interrupted or failed eval run: only the rows × repeats it has no
    result for are asked, through ``gateway`` with ``api_key`` — the caller's own: the URL
    the run was started with is whoever started it's, and the key must not follow it."""
    eval_id = eval_id.removeprefix("eval:")
    info = client.registry.evals.get(project, eval_id)
    if "suite" not in info.config:
        raise ConflictError(f"eval {eval_id} was recorded, not run: it cannot be resumed")
    if info.config.get("source") == "shadow":
        raise ConflictError(
            f"eval {eval_id} judged recorded shadow answers: it cannot be resumed "
            "(run `genai eval shadow` again)"
        )
    check_key(client, project, api_key)
    info = client.registry.evals.reopen(project, eval_id)
    version = client.registry.suites.get(project, info.config["suite"])
    spec = Suite.model_validate(
        {**version.definition, "name": version.name, "dataset": version.dataset}
    )
    spec = spec.model_copy(update={"repeats": int(info.config["repeats"])})
    return _execute(
        client, project, info, spec, version, gateway=gateway, api_key=api_key, progress=progress
    )


def _execute(
    client: Client,
    project: str,
    info: EvalRunInfo,
    spec: Suite,
    version: SuiteVersion,
    *,
    gateway: str,
    api_key: str,
    progress: bool,
) -> EvalJob:
    rows = rows_of(
        client.registry.datasets.rows(project, version.dataset, split=spec.split), spec.fields
    )
    base_id = info.config.get("baseline")
    metrics = build_metrics(
        spec,
        settings=client.settings,
        gateway=gateway,
        api_key=api_key,
        baseline=_answers(client, project, base_id) if base_id else None,
        baseline_id=base_id,
    )
    target = GatewayTarget(
        base_url=gateway,
        api_key=api_key,
        model=info.config["target"],
        params=spec.params,
        system=spec.system,
        timeout_s=spec.timeout_s,
        max_retries=spec.max_retries,
        gateway_cache=bool(info.config.get("gateway_cache")),
    )
    engine = _Engine(client, project, info, spec, rows, metrics, target)
    status = "failed"
    try:
        results = _run_async(engine, progress=progress)
        status = "finished"
    except (KeyboardInterrupt, asyncio.CancelledError):
        status = "interrupted"
        raise KeyboardInterrupt from None
    finally:
        if status != "finished":
            engine.flush_now()
            with contextlib.suppress(Exception):
                client.registry.evals.finish(project, info.id, status=status)
    summary = summarize(
        eval_id=info.id,
        suite=version.ref,
        target=info.config["target"],
        status="finished",
        repeats=spec.repeats,
        results=results,
        metrics=metrics,
    )
    _link(client, project, info, results)
    done = client.registry.evals.finish(project, info.id, metrics=flat_metrics(summary))
    return EvalJob(
        eval=done,
        summary=summary.model_copy(update={"status": done.status}),
        results=results,
        suite=spec,
    )


def build_metrics(
    spec: Suite,
    *,
    settings: Settings,
    gateway: str,
    api_key: str,
    baseline: Mapping[str, Answer] | None = None,
    baseline_id: str | None = None,
) -> list[Metric]:
    """The suite's metrics (and latency, cost and tokens, always measured); ``baseline``:
    the answers (by row id) of the run a pairwise judge compares with."""
    from eval._judges import judges_for

    env = MetricEnv(
        embedder=_Embedder(settings),
        judges=judges_for(spec, gateway=gateway, api_key=api_key),
        baseline=dict(baseline or {}),
        baseline_id=baseline_id,
        gateway=gateway,
        api_key=api_key,
    )
    built: list[Metric] = []
    for m in spec.metrics:
        options = m.options | ({"name": m.alias} if m.alias else {})
        built.append(METRICS.create(m.name, env=env, **options))
    names = {m.name for m in built}
    built += [METRICS.create(name, env=env) for name in _ALWAYS if name not in names]
    return built


class _Embedder:
    """The platform's embedding model (``GENAI_EMBEDDING_MODEL``: the bundled one by
    default, offline), built once, on the first metric that needs it."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._built: Any = None

    def __call__(self) -> Any:
        if self._built is None:
            from genai.models import create_embedder

            self._built = create_embedder(self._settings)
        return self._built


class _Engine:
    """The asynchronous part: answers, scores and the batched writes of one run."""

    def __init__(
        self,
        client: Client,
        project: str,
        info: EvalRunInfo,
        spec: Suite,
        rows: Sequence[EvalRow],
        metrics: Sequence[Metric],
        target: GatewayTarget,
    ) -> None:
        self._client, self._project, self._info = client, project, info
        self._spec, self._rows, self._metrics, self._target = spec, rows, metrics, target
        self._pending: list[EvalResultRecord] = []
        self._writing = asyncio.Lock()
        base = info.config.get("baseline")
        self._fps = {
            m.name: metric_fingerprint(spec, m.name)
            + (f"|baseline={base}" if getattr(m, "uses_baseline", False) else "")
            for m in metrics
        }

    async def go(self, *, progress: bool) -> list[RowResult]:
        evals = self._client.registry.evals
        done = {(r.row_index, r.repeat): r for r in evals.results(self._project, self._info.id)}
        work = [(row, k) for row in self._rows for k in range(self._spec.repeats)]
        keys = {(row.index, k): self._key(row, k) for row, k in work}
        fresh = bool(self._info.config.get("fresh"))
        cached = {} if fresh else evals.cached(self._project, list(keys.values()))
        kept = {pair for pair, key in keys.items() if pair in done and done[pair].cache_key == key}
        if any(pair not in kept and key not in cached for pair, key in keys.items()):
            await self._target.check()  # only when the gateway is to be asked at all
        gate = asyncio.Semaphore(self._spec.concurrency)
        bar = EvalProgress(enabled=progress, total=len(work), title=f"eval {self._spec.name}")
        out: dict[tuple[int, int], RowResult] = {}

        async def one(row: EvalRow, k: int) -> None:
            async with gate:
                if (row.index, k) in kept:
                    result = _from_record(row, done[(row.index, k)])
                else:
                    result = await self._answer(row, k, keys[(row.index, k)], cached)
                out[(row.index, k)] = result
                bar.advance(result)

        timer = asyncio.create_task(self._flush_periodically())
        try:
            with bar:
                await asyncio.gather(*(one(row, k) for row, k in work))
        finally:
            async with self._writing:  # a batch the timer is writing ends first
                timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer
            await asyncio.to_thread(self.flush_now)
            await self._target.aclose()
            for metric in self._metrics:  # metrics with an aclose (a worker process) end here
                closing = getattr(metric, "aclose", None)
                if closing is not None:
                    with contextlib.suppress(Exception):
                        await closing()
        return [out[key] for key in sorted(out)]

    async def _answer(
        self, row: EvalRow, k: int, key: str, cached: dict[str, EvalResultRecord]
    ) -> RowResult:
        hit = cached.get(key)
        if hit is not None:
            answer = Answer.model_validate({**hit.answer, "cached": True})
            reuse = {
                name: MetricValue.model_validate(v["value"])
                for name, v in hit.scores.items()
                if isinstance(v, dict) and v.get("spec") == self._fps.get(name)
            }
        else:
            answer = await self._target.answer(self._target.body(row), repeat=k)
            reuse = {}
        scores = await score_all(self._metrics, row, answer, reuse=reuse)
        result = RowResult(row=row, repeat=k, answer=answer, scores=scores)
        self._pending.append(self._record(result, key))
        if len(self._pending) >= _FLUSH_EVERY:
            await self._flush()
        return result

    async def _flush(self) -> None:
        """Write the waiting results in a thread, unless a batch is being written (then
        they wait for the next)."""
        if self._pending and not self._writing.locked():
            async with self._writing:
                await asyncio.to_thread(self.flush_now)

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(_FLUSH_AFTER_S)
            await self._flush()

    def flush_now(self) -> None:
        """Write the waiting results (one transaction)."""
        batch, self._pending = self._pending, []
        if batch:
            self._client.registry.evals.add_results(self._project, self._info.id, batch)

    def _record(self, result: RowResult, key: str) -> EvalResultRecord:
        answer = result.answer.model_dump(mode="json", exclude={"cached"})
        scores = {
            name: {"value": v.model_dump(mode="json"), "spec": self._fps.get(name, "")}
            for name, v in result.scores.items()
        }
        return EvalResultRecord(
            row_index=result.row.index,
            repeat=result.repeat,
            cache_key=key,
            answer=answer,
            scores=scores,
        )

    def _key(self, row: EvalRow, repeat: int) -> str:
        body = self._target.body(row)
        blob = json.dumps(
            {"fp": self._info.config["fingerprint"], "body": body, "repeat": repeat},
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(blob.encode()).hexdigest()


def _answers(client: Client, project: str, eval_id: str) -> dict[str, Answer]:
    """A stored run's first answer to each row, by row id."""
    _, results = load_run(client, project, eval_id)
    out: dict[str, Answer] = {}
    for r in sorted(results, key=lambda r: r.repeat):
        out.setdefault(r.row.id, r.answer)
    return out


def _from_record(row: EvalRow, record: EvalResultRecord) -> RowResult:
    return RowResult(
        row=row,
        repeat=record.repeat,
        answer=Answer.model_validate(record.answer),
        scores={
            name: MetricValue.model_validate(v["value"])
            for name, v in record.scores.items()
            if isinstance(v, dict) and "value" in v
        },
    )


def metric_fingerprint(spec: Suite, name: str) -> str:
    for m in spec.metrics:
        if m.label == name:
            return m.fingerprint()
    return json.dumps({"name": name})


def _knowledge_bases(dep_spec: dict[str, Any]) -> list[str]:
    """The knowledge bases a deployment's bots answer from."""
    names = []
    for tgt in dep_spec.get("targets") or []:
        options = tgt.get("options") if isinstance(tgt, dict) else None
        if isinstance(options, dict) and isinstance(options.get("kb"), str):
            names.append(options["kb"])
    return sorted(set(names))


def _fingerprint(client: Client, project: str, revision: str, dep_spec: dict[str, Any]) -> str:
    """What an answer depends on besides the request: the deployment revision, and the
    newest version of each knowledge base and prompt its bots use."""
    parts: dict[str, Any] = {"deployment": revision}
    for tgt in dep_spec.get("targets") or []:
        options = tgt.get("options") if isinstance(tgt, dict) else None
        if not isinstance(options, dict):
            continue
        with contextlib.suppress(NotFoundError, UsageError):
            if isinstance(options.get("kb"), str):
                kb = options["kb"]
                parts[f"kb:{kb}"] = client.registry.datasets.get(project, f"kb-{kb}").ref
            if isinstance(options.get("prompt"), str):
                prompt = options["prompt"]
                parts[f"prompt:{prompt}"] = client.registry.prompts.get(project, prompt).ref
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def check_key(client: Client, project: str, api_key: str) -> None:
    """The key must be one of ``project``: the run's registry entry and its answers must
    belong to the same project."""
    import genai

    keyed = genai.connect(client.settings, api_key=api_key, store=client.store)
    try:
        keyed.projects.get(project)
    except NotFoundError:
        raise UsageError(
            f"the API key is not a key of project {project!r}: use a key of the project "
            "whose deployment you evaluate (`genai key create --project ...`)"
        ) from None


def _register(client: Client, project: str, spec: Suite) -> SuiteVersion:
    dataset = spec.dataset
    if not dataset.startswith("dataset:"):
        path = Path(dataset)
        if not path.exists():
            raise UsageError(
                f"the suite's dataset {dataset!r} is neither a file nor a registered "
                "dataset (write dataset:NAME@VERSION)"
            )
        dataset = client.registry.datasets.register(project, f"eval-{spec.name}", path).ref
    return client.registry.suites.register(
        project,
        spec.name,
        dataset=dataset,
        definition=spec.definition(),
        description=spec.description,
    )


def _link(client: Client, project: str, info: EvalRunInfo, results: Sequence[RowResult]) -> None:
    """Lineage to what the answers say they used: the prompt versions and, for a
    deployment with one knowledge base, its versions."""
    refs = {
        p if ":" in p else f"prompt:{p}" for p in (r.answer.prompt_version for r in results) if p
    }
    kbs = info.config.get("kbs") or []
    if len(kbs) == 1:
        refs |= {
            f"dataset:kb-{kbs[0]}@{r.answer.kb_version}" for r in results if r.answer.kb_version
        }
    for ref in sorted(refs):
        with contextlib.suppress(NotFoundError, UsageError):
            client.registry.evals.link(project, info.id, [ref])


def flat_metrics(summary: RunSummary) -> dict[str, Any]:
    out: dict[str, Any] = {
        "rows": summary.rows,
        "repeats": summary.repeats,
        "errors": summary.errors,
    }
    for name, m in summary.metrics.items():
        out[name] = {
            **m.estimate.model_dump(),
            "kind": m.kind,
            "higher_is_better": m.higher_is_better,
            "bounds": m.bounds,
            "reasons": m.reasons,
        }
    return out


def _run_async(engine: _Engine, *, progress: bool) -> list[RowResult]:
    """Run the engine to the end. SIGTERM (a CI job cancelled, a pod stopped) and Ctrl-C
    cancel it: the run ends as interrupted, resumable."""

    async def main() -> list[RowResult]:
        task = asyncio.current_task()
        assert task is not None
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        return await engine.go(progress=progress)

    return run_sync(main)


def run_sync(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to the end from sync code, on a loop of its own (in a thread when
    the caller's thread has one running: a notebook)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, make()).result()
