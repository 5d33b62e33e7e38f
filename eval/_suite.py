"""Suites: a dataset plus metrics, thresholds and run options, in YAML or Python.

.. code-block:: yaml

    name: docs-qa
    dataset: docs-qa.jsonl        # a file (registered as a dataset version when run)
                                  # or a registered version: dataset:docs-qa@2
    split: test                   # optional: one split of the dataset
    fields: {question: q, reference: a}   # optional: the row keys, when named otherwise
    repeats: 3                    # independent answers per row (CIs cluster by row)
    timeout_s: 120                # per request (judge_timeout_s: per judge call)
    params: {temperature: 0, max_tokens: 256}
    metrics:
      - token_f1
      - {name: regex, pattern: "\\\\[\\\\d+\\\\]", as: cites}
    thresholds:
      - {metric: token_f1, min: 0.3}          # its lower CI bound must reach 0.3
      - {metric: latency, max: 2000}          # its upper CI bound must stay under 2000
      - {metric: token_f1, no_regression: true, margin: 0.05}  # against the baseline

A row has ``messages`` (OpenAI chat messages) or a ``question``; optionally a
``reference`` answer, ``reference_contexts`` and an ``id``; every other key is metadata.
A chat fine-tuning row (``messages`` ending with the assistant's turn) is asked without
that turn, which is then its ``reference`` when the row has none: a fine-tuning dataset's
held-out split is a suite as it is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from eval._types import EvalRow, Message, MetaValue
from genai import errors

__all__ = ["MetricSpec", "Suite", "Threshold", "load_suite", "rows_of"]


class MetricSpec(BaseModel):
    """A metric by registry name, with its options; ``as`` renames it in results."""

    model_config = ConfigDict(frozen=True, extra="allow", populate_by_name=True)

    name: str
    alias: str | None = Field(default=None, alias="as")

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @property
    def label(self) -> str:
        return self.alias or self.name

    def fingerprint(self) -> str:
        return json.dumps({"name": self.name, **self.options}, sort_keys=True, default=str)


class Threshold(BaseModel):
    """An absolute bound on a metric's CI (``min``: the lower bound must reach it; ``max``:
    the upper bound must stay under it), or ``no_regression`` against a baseline run (a
    significant regression fails; an underpowered comparison, with ``margin`` above its
    minimum detectable effect, is inconclusive)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    metric: str
    min: float | None = None
    max: float | None = None
    no_regression: bool = False
    margin: float = 0.05

    @model_validator(mode="after")
    def _one_kind(self) -> Threshold:
        if self.min is None and self.max is None and not self.no_regression:
            raise ValueError(f"threshold on {self.metric!r} sets none of min, max, no_regression")
        return self


#: Request fields the run sets itself, and the SDK's per-call options (headers, query,
#: timeout): a suite (a registry entry any member writes) sets body fields only.
_RUN_SETS = frozenset(
    {"model", "messages", "stream", "n", "extra_headers", "extra_query", "extra_body", "timeout"}
)


class Suite(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    dataset: str
    split: str | None = None
    fields: dict[str, str] = Field(default_factory=dict)
    system: str | None = None
    repeats: int = Field(default=1, ge=1, le=100)
    concurrency: int = Field(default=4, ge=1, le=256)
    max_retries: int = Field(default=2, ge=0, le=10)
    timeout_s: float = Field(default=120.0, gt=0)
    judge_timeout_s: float | None = Field(default=None, gt=0)  # None: timeout_s
    params: dict[str, Any] = Field(default_factory=dict)
    metrics: tuple[MetricSpec, ...] = ()
    thresholds: tuple[Threshold, ...] = ()
    description: str = ""

    @field_validator("metrics", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Suite:
        labels = [m.label for m in self.metrics]
        dup = sorted({x for x in labels if labels.count(x) > 1})
        if dup:
            raise ValueError(f"metric {dup[0]!r} appears twice: name one of them with `as:`")
        measured = {*labels, "latency", "cost", "tokens"}
        for th in self.thresholds:
            if th.metric not in measured:
                raise ValueError(
                    f"threshold on {th.metric!r}, which is not among the suite's metrics "
                    f"({', '.join(labels) or 'none'})"
                )
        banned = _RUN_SETS & set(self.params)
        if banned:
            raise ValueError(f"params may not set {', '.join(sorted(banned))}: the run sets them")
        return self

    def definition(self) -> dict[str, Any]:
        """The document the registry versions (everything but the dataset reference)."""
        return self.model_dump(mode="json", by_alias=True, exclude={"dataset", "name"})


def load_suite(source: str | Path | Mapping[str, Any]) -> Suite:
    """A suite from a YAML file or a mapping; a relative ``dataset`` path is taken from
    the YAML file's folder. Problems are one :class:`genai.errors.ValidationError` naming
    each field."""
    where = "suite"
    if isinstance(source, Mapping):
        data: Any = dict(source)
    else:
        path = Path(source)
        where = str(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise errors.ValidationError(f"cannot read the suite {path}: {exc}") from exc
        except yaml.YAMLError as exc:
            raise errors.ValidationError(f"{path} is not valid YAML: {exc}") from exc
        if isinstance(data, dict) and isinstance(data.get("dataset"), str):
            local = path.parent / data["dataset"]
            if ":" not in data["dataset"] and local.exists():
                data["dataset"] = str(local)
    if not isinstance(data, dict):
        raise errors.ValidationError(f"{where}: a suite is a mapping of fields")
    try:
        return Suite.model_validate(data)
    except ValidationError as exc:
        raise errors.ValidationError(f"{where}: {_explain(exc)}") from exc


def _explain(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "suite"
        parts.append(f"{loc}: {e['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


_KNOWN = ("id", "messages", "question", "reference", "reference_contexts")


def rows_of(
    raw: Sequence[Mapping[str, Any]], fields: Mapping[str, str] | None = None
) -> list[EvalRow]:
    """Dataset rows as :class:`EvalRow`; every problem of every row is named, with its
    row number (1-based), in one :class:`genai.errors.ValidationError`."""
    names = {k: (fields or {}).get(k, k) for k in _KNOWN}
    rows, problems = [], []
    for index, item in enumerate(raw):
        try:
            rows.append(_row(index, item, names))
        except ValueError as exc:
            problems.append(f"row {index + 1}: {exc}")
    if problems:
        shown = "; ".join(problems[:10]) + (
            f"; and {len(problems) - 10} more" if len(problems) > 10 else ""
        )
        raise errors.ValidationError(
            f"{len(problems)} of {len(raw)} rows cannot be evaluated: {shown}"
        )
    ids = [r.id for r in rows]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise errors.ValidationError(f"row id {dup!r} appears twice: ids must be unique")
    if not rows:
        raise errors.ValidationError("the dataset has no rows to evaluate")
    return rows


def _row(index: int, item: Mapping[str, Any], names: Mapping[str, str]) -> EvalRow:
    if not isinstance(item, Mapping):
        raise ValueError("is not a JSON object")
    question = item.get(names["question"])
    messages = item.get(names["messages"])
    if messages is None and question is None:
        raise ValueError(f"has neither {names['messages']!r} nor {names['question']!r}")
    if question is not None and not isinstance(question, str):
        raise ValueError(f"{names['question']!r} is not text")
    msgs = _messages(messages, names["messages"]) if messages is not None else None
    reference = item.get(names["reference"])
    if msgs is not None and msgs[-1].role == "assistant":
        if len(msgs) == 1:
            raise ValueError(f"{names['messages']!r} has only the assistant's turn to ask")
        if reference is None:
            reference = msgs[-1].content
        msgs = msgs[:-1]  # the answer to score, not part of the question
    if reference is not None and not isinstance(reference, str):
        reference = (
            json.dumps(reference) if not isinstance(reference, int | float) else str(reference)
        )
    contexts = item.get(names["reference_contexts"]) or []
    if isinstance(contexts, str):
        contexts = [contexts]
    if not isinstance(contexts, list) or not all(isinstance(c, str) for c in contexts):
        raise ValueError(f"{names['reference_contexts']!r} is not a list of texts")
    used = {names[k] for k in _KNOWN}
    meta: dict[str, MetaValue] = {
        k: v if isinstance(v, str | int | float | bool) or v is None else json.dumps(v)
        for k, v in item.items()
        if k not in used
    }
    row_id = item.get(names["id"], index)
    return EvalRow(
        index=index,
        id=str(row_id),
        messages=msgs or (Message(role="user", content=question or ""),),
        question=question,
        reference=reference,
        reference_contexts=tuple(contexts),
        metadata=meta,
    )


def _messages(value: Any, field: str) -> tuple[Message, ...]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"{field!r} is not a non-empty list of chat messages")
    out = []
    for n, m in enumerate(value, 1):
        try:
            out.append(Message.model_validate(m))
        except ValidationError as exc:
            raise ValueError(f"{field}[{n}] is not a chat message ({_explain(exc)})") from exc
    return tuple(out)
