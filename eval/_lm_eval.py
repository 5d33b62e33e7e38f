"""LLM benchmarks: lm-evaluation-harness against a deployment, through the gateway.

:func:`lm_eval` runs the ``lm_eval`` command (lm-evaluation-harness, the optional extra
``genai-platform[lm-eval]``, or any environment of its own named by ``python`` or
``GENAI_LM_EVAL_PYTHON``) as a subprocess with ``--model local-completions``: its requests
go to the gateway's ``/v1/completions`` as token ids with ``echo`` and ``logprobs``
(log-likelihood tasks) or as text (generation tasks), with the project's key, so quotas,
DLP and the usage ledger apply as to any caller. lm-eval counts context lengths with the
served model's tokenizer: ``tokenizer``, else the local directory of the deployment's
registered model.

Its results become an eval run of suite ``lm-eval-<tasks>``: the documents it scored are
registered as a dataset version and the suite version evaluates it, the run's lineage
parents are them and the deployment revision, and each document is a result row (the
model's answer, its per-document metric values), so ``genai eval show|compare|gate|report``
treat it as any run. A failed or interrupted ``lm_eval`` is recorded as such, with the
tail of its output. Task files are read offline from the Hugging Face cache unless
``online``; a task's relative ``data_files`` are taken from ``include_path``.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eval._aggregate import MetricInfo, summarize
from eval._lm_eval_output import LmEvalOutput, LmEvalScore, read_output
from eval._lm_eval_proc import environment, execute, lm_eval_python
from eval._run import check_key, flat_metrics
from eval._suite import MetricSpec, Suite, rows_of
from eval._summary import RowResult, RunSummary
from eval._target import split_target
from eval._types import Answer, MetricValue
from genai.errors import BackendError, GenAIError, NotFoundError, UsageError, ValidationError
from genai.gateway import inprocess_policy
from genai.registry import DeploymentRevision, EvalResultRecord, EvalRunInfo

if TYPE_CHECKING:
    from genai import Client

__all__ = ["LmEvalJob", "LmEvalScore", "lm_eval", "suite_name"]


@dataclass(frozen=True)
class LmEvalJob:
    """A finished lm-eval run: its registry entry, the scores lm-eval reported (with CIs),
    and the run's summary and per-document results as every eval run has them."""

    eval: EvalRunInfo
    scores: list[LmEvalScore]
    summary: RunSummary
    results: list[RowResult]
    version: str  # lm-eval's


def lm_eval(
    client: Client,
    project: str,
    tasks: Sequence[str],
    *,
    target: str,
    gateway: str,
    api_key: str,
    tokenizer: str | Path | None = None,
    include_path: str | Path | None = None,
    limit: float | None = None,
    num_fewshot: int | None = None,
    batch_size: int = 1,
    concurrency: int = 1,
    python: str | Path | None = None,
    extra_model_args: Mapping[str, str] | None = None,
    online: bool = False,
    progress: bool = False,
    on_output: Callable[[str], None] | None = None,
) -> LmEvalJob:
    """Benchmark ``target`` (``DEPLOYMENT[:ADAPTER]``) on lm-eval ``tasks`` through the
    gateway at ``gateway`` (its ``/v1`` URL) with ``api_key``, a key of ``project``.
    ``on_output`` gets each line lm_eval prints (its progress bars' updates included)."""
    names = _task_names(tasks)
    executable = lm_eval_python(python)
    check_key(client, project, api_key)
    revision = client.registry.deployments.get(project, split_target(target)[0])
    model_args = _model_args(
        gateway,
        target,
        tokenizer=_tokenizer(client, project, revision, tokenizer),
        concurrency=concurrency,
        extra=extra_model_args or {},
    )
    include = Path(include_path).expanduser().resolve() if include_path is not None else None
    config: dict[str, Any] = {
        "kind": "lm-eval",
        "target": target,
        "gateway": gateway,
        "repeats": 1,
        "tasks": names,
        "model": "local-completions",
        "model_args": model_args,  # the key travels in the environment, never here
        "include_path": str(include) if include else None,
        "limit": limit,
        "num_fewshot": num_fewshot,
        "batch_size": batch_size,
    }
    suite = suite_name(names)
    with tempfile.TemporaryDirectory(prefix="genai-lm-eval-") as out:
        command = [str(executable), "-m", "lm_eval", "--model", "local-completions"]
        command += _arguments(model_args, names, out, config)
        try:
            execute(
                command,
                cwd=(include if include.is_dir() else include.parent) if include else Path.cwd(),
                env=environment(api_key, online=online),
                progress=progress,
                on_output=on_output,
            )
            output = read_output(Path(out))
        except KeyboardInterrupt:
            _ended(client, project, suite, revision, config, "interrupted", "interrupted")
            raise
        except GenAIError as error:
            _ended(client, project, suite, revision, config, "failed", error.message)
            raise
    return _keep(client, project, suite, revision, {**config, "lm_eval": output.version}, output)


def suite_name(tasks: Sequence[str]) -> str:
    """``lm-eval-<task>.<task>…`` (sorted), a valid registry name (hashed when long)."""
    joined = ".".join(sorted(tasks))
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", f"lm-eval-{joined}").strip("-._")
    if len(name) > 100:
        digest = hashlib.sha256(joined.encode()).hexdigest()[:12]
        name = f"{name[:87].rstrip('-._')}-{digest}"
    return name


def _task_names(tasks: Sequence[str]) -> list[str]:
    names = [t.strip() for item in tasks for t in item.split(",") if t.strip()]
    if not names:
        raise ValidationError("name at least one lm-eval task", field="tasks")
    return list(dict.fromkeys(names))


def _arguments(
    model_args: Mapping[str, str], tasks: Sequence[str], out: str, config: Mapping[str, Any]
) -> list[str]:
    """lm_eval's command-line arguments (``config``: include path, limit, few-shot, batch)."""
    args = ["--model_args", _join(model_args), "--tasks", ",".join(tasks)]
    args += ["--batch_size", str(config["batch_size"]), "--output_path", out, "--log_samples"]
    if config["include_path"] is not None:
        args += ["--include_path", config["include_path"]]
    if config["limit"] is not None:
        args += ["--limit", _limit(config["limit"])]
    if config["num_fewshot"] is not None:
        args += ["--num_fewshot", str(config["num_fewshot"])]
    return args


def _model_args(
    gateway: str, target: str, *, tokenizer: str, concurrency: int, extra: Mapping[str, str]
) -> dict[str, str]:
    """lm-eval's ``local-completions`` arguments: the gateway's ``/v1/completions``, the
    target as the model, token-id prompts counted by the served model's tokenizer."""
    fixed = {"base_url", "model"} & set(extra)
    if fixed:
        raise ValidationError(
            f"model_args may not set {', '.join(sorted(fixed))}: lm-eval asks the target "
            "through the gateway",
            field="model_args",
        )
    return {
        "base_url": gateway.rstrip("/") + "/completions",
        "model": target,
        "tokenizer": tokenizer,
        "tokenizer_backend": "huggingface",
        "tokenized_requests": "True",
        "num_concurrent": str(concurrency),
        "max_retries": "3",
        **dict(extra),
    }


def _join(args: Mapping[str, str]) -> str:
    for key, value in args.items():
        if "," in f"{key}{value}" or "=" in key:
            raise ValidationError(
                f"model argument {key}={value!r}: lm-eval's model_args cannot hold ',' (or '=' "
                "in a name)",
                field="model_args",
            )
    return ",".join(f"{k}={v}" for k, v in args.items())


def _limit(limit: float) -> str:
    if limit <= 0:
        raise ValidationError(f"limit must be positive, got {limit}", field="limit")
    return str(int(limit)) if float(limit).is_integer() else str(limit)


def _tokenizer(
    client: Client, project: str, revision: DeploymentRevision, given: str | Path | None
) -> str:
    """The served model's tokenizer: ``given``, else the deployment's registered model's
    directory, else a target's local ``options.model`` directory when it lies in the
    operator's model roots (``GENAI_MODEL_ROOTS``: a path a project member wrote in a spec
    is read on this machine only there, as the gateway reads one)."""
    if given is not None:
        path = Path(given).expanduser()
        return str(path.resolve()) if path.exists() else str(given)
    if revision.model is not None:
        with contextlib.suppress(NotFoundError, UsageError):
            return str(client.registry.models.local_path(project, revision.model))
    roots = inprocess_policy(client.settings)
    for target in revision.spec.get("targets") or []:
        options = target.get("options") if isinstance(target, dict) else None
        model = options.get("model") if isinstance(options, dict) else None
        if isinstance(model, str) and roots.contains(model) and Path(model).is_dir():
            return model
    raise UsageError(
        f"cannot tell which tokenizer {revision.ref} serves with (no registered model with "
        "local files): pass --tokenizer DIR, the served model's directory or its tokenizer's"
    )


def _ended(
    client: Client,
    project: str,
    suite: str,
    revision: DeploymentRevision,
    config: dict[str, Any],
    status: str,
    error: str,
) -> None:
    """Record an lm-eval run that produced no results (failed, interrupted)."""
    with contextlib.suppress(GenAIError):
        client.registry.evals.record(
            project,
            suite,
            metrics={},
            inputs=[revision.ref],
            config={**config, "error": error[-4000:]},
            status=status,
        )


def _keep(
    client: Client,
    project: str,
    suite: str,
    revision: DeploymentRevision,
    config: dict[str, Any],
    output: LmEvalOutput,
) -> LmEvalJob:
    """Register the documents and the suite, then the run with its results and summary."""
    if not output.docs:
        raise BackendError(
            f"lm_eval reported no documents for {', '.join(output.tasks) or 'its tasks'}",
            backend="lm-eval",
        )
    raw = [
        {
            "id": d.id,
            "question": d.prompt,
            "reference": d.target,
            "task": d.task,
            "doc_id": d.doc_id,
        }
        for d in output.docs
    ]
    description = f"lm-evaluation-harness {', '.join(output.tasks)} (recorded by genai)"
    dataset = client.registry.datasets.register(project, suite, raw, description=description)
    per_doc = [s for s in output.scores if s.per_doc]
    spec = Suite(
        name=suite,
        dataset=dataset.ref,
        metrics=tuple(MetricSpec(name=s.name) for s in per_doc),
        description=description,
    )
    version = client.registry.suites.register(
        project, suite, dataset=dataset.ref, definition=spec.definition(), description=description
    )
    info = client.registry.evals.record(
        project,
        suite,
        metrics={},
        inputs=[version.ref, dataset.ref, revision.ref],
        config={**config, "suite": version.ref},
        status="running",
    )
    rows = rows_of(raw)
    results = [
        RowResult(
            row=row,
            repeat=0,
            answer=Answer(output=doc.output),
            scores={name: MetricValue.of(v) for name, v in doc.values.items()},
        )
        for row, doc in zip(rows, output.docs, strict=True)
    ]
    try:
        client.registry.evals.add_results(project, info.id, [_record(r) for r in results])
    except BaseException:
        with contextlib.suppress(GenAIError):
            client.registry.evals.finish(project, info.id, status="failed")
        raise
    return _finish(client, project, info, output, results)


def _finish(
    client: Client,
    project: str,
    info: EvalRunInfo,
    output: LmEvalOutput,
    results: list[RowResult],
) -> LmEvalJob:
    infos = [
        MetricInfo(
            name=s.name,
            kind="binary" if _binary(s.name, results) else "continuous",
            higher_is_better=s.higher_is_better,
        )
        for s in output.scores
        if s.per_doc
    ]
    summary = summarize(
        eval_id=info.id,
        suite=info.config["suite"],
        target=info.config["target"],
        status="finished",
        repeats=1,
        results=results,
        metrics=infos,
    )
    scores = [
        s.model_copy(update={"estimate": summary.metrics[s.name].estimate}) if s.per_doc else s
        for s in output.scores
    ]
    flat = flat_metrics(summary)
    for s in scores:
        reported = {"value": s.value, "stderr": s.stderr, "task": s.task, "metric": s.metric}
        if s.per_doc:
            flat[s.name]["lm_eval"] = reported
        else:  # no per-document values: lm-eval's figure only (no "kind": not re-summarised)
            flat[s.name] = {**s.estimate.model_dump(), "lm_eval": reported}
    done = client.registry.evals.finish(project, info.id, metrics=flat)
    return LmEvalJob(
        eval=done,
        scores=scores,
        summary=summary.model_copy(update={"status": done.status}),
        results=results,
        version=output.version,
    )


def _binary(name: str, results: Sequence[RowResult]) -> bool:
    values = [r.scores[name].value for r in results if name in r.scores]
    return all(v in (0.0, 1.0) for v in values)


def _record(result: RowResult) -> EvalResultRecord:
    return EvalResultRecord(
        row_index=result.row.index,
        repeat=0,
        cache_key="",
        answer=result.answer.model_dump(mode="json", exclude={"cached"}),
        scores={
            name: {"value": v.model_dump(mode="json"), "spec": ""}
            for name, v in result.scores.items()
        },
    )
