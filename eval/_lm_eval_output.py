"""What one ``lm_eval`` run wrote (``--output_path DIR --log_samples``), read back.

``DIR/<model>/results_<time>.json`` has, per task, each metric's value and stderr under
``"<metric>,<filter>"`` and ``"<metric>_stderr,<filter>"`` keys; ``samples_<task>_<time>.jsonl``
has one line per document and filter: the prompt (``arguments``), the ``target``, the
model's responses (``resps``, and ``filtered_resps`` after the filter) and the document's
value of each metric.

A run's metric is named as lm-eval names it, less the ``none`` filter: ``acc``,
``acc_norm``, ``exact_match,strict-match``; with several tasks, prefixed by the task:
``arc_easy/acc``. A metric whose value is the mean of its per-document values (lm-eval's
``mean`` aggregation: acc, exact_match…) keeps them, so its confidence interval is
computed like any eval metric's; the others (perplexities, corpus BLEU) keep lm-eval's
value and stderr only.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from statistics import NormalDist
from typing import Any

from pydantic import BaseModel, ConfigDict

from eval._stats import Estimate
from genai.errors import BackendError

__all__ = ["LmEvalDoc", "LmEvalOutput", "LmEvalScore", "read_output"]

_SAMPLES = re.compile(r"samples_(?P<task>.+)_(?P<time>\d{4}-\d\d-\d\dT[\d.:-]+)\.jsonl")
_Z = NormalDist().inv_cdf(0.975)


class LmEvalScore(BaseModel):
    """One metric of one task as lm-eval reported it, with its 95% CI: from the per-document
    values (``per_doc``) like every eval metric's, else ``value ± 1.96·stderr``."""

    model_config = ConfigDict(frozen=True)

    task: str
    metric: str  # lm-eval's name: acc, acc_norm, exact_match
    filter: str  # lm-eval's filter ("none" when the task has none)
    name: str  # the eval run's metric name
    value: float | None
    stderr: float | None
    higher_is_better: bool
    per_doc: bool
    estimate: Estimate


@dataclass(frozen=True)
class LmEvalDoc:
    """One document of one task: what was asked, expected and answered, and its values."""

    task: str
    doc_id: int
    prompt: str
    target: str
    output: str
    values: dict[str, float] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.task}/{self.doc_id}"


@dataclass(frozen=True)
class LmEvalOutput:
    version: str  # lm-eval's
    tasks: list[str]
    scores: list[LmEvalScore]
    docs: list[LmEvalDoc]  # by task, then document id


def read_output(directory: Path) -> LmEvalOutput:
    """The results and samples under ``directory`` (lm_eval's ``--output_path``)."""
    found = sorted(directory.rglob("results_*.json"))
    if not found:
        raise BackendError(f"lm_eval wrote no results under {directory}", backend="lm-eval")
    results = json.loads(found[-1].read_text(encoding="utf-8"))
    tasks = list(results.get("results") or {})
    prefix = len(tasks) > 1
    scores = [s for task in tasks for s in _reported(results, task, prefix=prefix)]
    samples = _samples(directory)
    configs = results.get("configs") or {}
    docs: list[LmEvalDoc] = []
    for task in tasks:
        if task in samples:
            output_type = str((configs.get(task) or {}).get("output_type", ""))
            docs += _docs(task, samples[task], output_type, prefix=prefix)
    scores = [_check_per_doc(s, docs) for s in scores]
    kept = {s.name for s in scores if s.per_doc}
    docs = [replace(d, values={k: v for k, v in d.values.items() if k in kept}) for d in docs]
    return LmEvalOutput(
        version=str(results.get("lm_eval_version") or "unknown"),
        tasks=tasks,
        scores=scores,
        docs=docs,
    )


def metric_name(task: str, metric: str, filter_: str, *, prefix: bool) -> str:
    name = metric if filter_ == "none" else f"{metric},{filter_}"
    return f"{task}/{name}" if prefix else name


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _reported(results: Mapping[str, Any], task: str, *, prefix: bool) -> list[LmEvalScore]:
    values: Mapping[str, Any] = results["results"][task]
    better: Mapping[str, Any] = (results.get("higher_is_better") or {}).get(task) or {}
    samples = (results.get("n-samples") or {}).get(task) or {}
    n = int(samples.get("effective") or 0)
    out = []
    for key, raw in values.items():
        metric, comma, filter_ = key.partition(",")
        if not comma or metric.endswith("_stderr"):
            continue
        value = _number(raw)
        stderr = _number(values.get(f"{metric}_stderr,{filter_}"))
        low = high = None
        if value is not None and stderr is not None:
            low, high = value - _Z * stderr, value + _Z * stderr
        out.append(
            LmEvalScore(
                task=task,
                metric=metric,
                filter=filter_,
                name=metric_name(task, metric, filter_, prefix=prefix),
                value=value,
                stderr=stderr,
                higher_is_better=bool(better.get(metric, True)),
                per_doc=False,
                estimate=Estimate(
                    mean=value, low=low, high=high, n=n if value is not None else 0, unmeasured=0
                ),
            )
        )
    return out


def _samples(directory: Path) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(directory.rglob("samples_*.jsonl")):
        match = _SAMPLES.fullmatch(path.name)
        if match is None:
            continue
        lines = path.read_text(encoding="utf-8").splitlines()
        out.setdefault(match["task"], []).extend(json.loads(x) for x in lines if x.strip())
    return out


def _docs(
    task: str, samples: Sequence[Mapping[str, Any]], output_type: str, *, prefix: bool
) -> list[LmEvalDoc]:
    """One document per doc id; a task with several filters has a line per filter."""
    docs: dict[int, LmEvalDoc] = {}
    for sample in samples:
        doc_id = int(sample["doc_id"])
        filter_ = str(sample.get("filter") or "none")
        if doc_id not in docs:
            prompt, target, output = _texts(sample, output_type)
            docs[doc_id] = LmEvalDoc(task, doc_id, prompt, target, output)
        for metric in sample.get("metrics") or []:
            value = _number(sample.get(metric))
            if value is not None:
                name = metric_name(task, str(metric), filter_, prefix=prefix)
                docs[doc_id].values[name] = value
    return [docs[k] for k in sorted(docs)]


def _texts(sample: Mapping[str, Any], output_type: str) -> tuple[str, str, str]:
    """The prompt, the target and the model's answer of a document, as text."""
    arguments = sample.get("arguments") or {}
    args = [arguments[k] for k in sorted(arguments, key=_arg_number)]
    prompt = _text(args[0].get("arg_0")) if args else ""
    target = sample.get("target")
    if output_type == "multiple_choice" and args:
        choices = [_text(a.get("arg_1")).strip() for a in args]
        loglikelihoods = [_loglikelihood(r) for r in sample.get("filtered_resps") or []]
        output = ""
        if loglikelihoods and len(loglikelihoods) == len(choices):
            output = choices[max(range(len(choices)), key=loglikelihoods.__getitem__)]
        if isinstance(target, int | str) and str(target).isdigit() and int(target) < len(choices):
            return prompt, choices[int(target)], output
        return prompt, _text(target), output
    resps = sample.get("resps") or []
    first = resps[0][0] if resps and isinstance(resps[0], list) and resps[0] else resps
    return prompt, _text(target), _text(first)


def _arg_number(key: str) -> int:
    digits = key.rpartition("_")[2]
    return int(digits) if digits.isdigit() else 0


def _loglikelihood(resp: Any) -> float:
    value = resp[0] if isinstance(resp, list | tuple) and resp else resp
    try:
        return float(value)
    except (TypeError, ValueError):
        return -math.inf


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return "" if value is None else json.dumps(value, default=str)


def _check_per_doc(score: LmEvalScore, docs: Sequence[LmEvalDoc]) -> LmEvalScore:
    """Per-document values stand for a metric when every document of its task has one and
    their mean is the value lm-eval reported (its ``mean`` aggregation)."""
    mine = [d for d in docs if d.task == score.task]
    values = [d.values.get(score.name) for d in mine]
    if score.value is None or not values or any(v is None for v in values):
        return score
    mean = math.fsum(v for v in values if v is not None) / len(values)
    if not math.isclose(mean, score.value, rel_tol=1e-9, abs_tol=1e-12):
        return score
    return score.model_copy(update={"per_doc": True})
