"""The typed contract between suites, targets, metrics, statistics and reports.

A suite's dataset rows become :class:`EvalRow`; the target's answer to a row (one repeat)
is an :class:`Answer`; a metric sees both as a :class:`Sample` and returns a
:class:`MetricValue`: a score, or *unmeasured* with its reason — never NaN.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "Answer",
    "Citation",
    "EvalRow",
    "Message",
    "MetricKind",
    "MetricValue",
    "Sample",
]

#: ``binary`` metrics are pass/fail (0 or 1: compared with McNemar's test); ``continuous``
#: ones are any real number (compared with a paired bootstrap).
MetricKind = Literal["binary", "continuous"]

MetaValue = str | int | float | bool | None


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Message(_Frozen):
    role: Literal["system", "user", "assistant", "developer"]
    content: str


class EvalRow(_Frozen):
    """One row of a suite's dataset: ``messages`` to send (a ``question`` alone becomes one
    user message), an optional ``reference`` answer and ``reference_contexts``, and
    ``metadata`` (kept with the results, and available to a prompt target's variables)."""

    index: int  # the row's position in the dataset version (0-based)
    id: str  # a stable identity: the row's "id" field, or its index
    messages: tuple[Message, ...]
    question: str | None = None
    reference: str | None = None
    reference_contexts: tuple[str, ...] = ()
    metadata: dict[str, MetaValue] = Field(default_factory=dict)

    @property
    def prompt(self) -> str:
        """The question, or the last user message: what relevance metrics compare with."""
        if self.question is not None:
            return self.question
        users = [m.content for m in self.messages if m.role == "user"]
        return users[-1] if users else ""


class Citation(_Frozen):
    """A chunk a knowledge bot's answer cites (``[n]`` in its text)."""

    number: int
    text: str
    source: str = ""


class Answer(_Frozen):
    """What the target answered to one row, one repeat: the text or the error, and its
    cost. ``contexts`` are the retrieved texts the answer was given (a knowledge bot's
    cited chunks); ``error`` is set when the target failed on this row (counted, never a
    crash), and then ``output`` is empty."""

    output: str = ""
    error: str | None = None
    contexts: tuple[str, ...] = ()
    citations: tuple[Citation, ...] = ()
    latency_ms: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None
    finish_reason: str | None = None
    cached: bool = False  # served from the eval's own result cache (no upstream call)
    request_id: str | None = None
    prompt_version: str | None = None  # a knowledge bot's or prompt target's prompt ref
    kb_version: int | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class Sample(_Frozen):
    """What a metric scores: the row and the answer to it."""

    row: EvalRow
    answer: Answer

    @property
    def output(self) -> str:
        return self.answer.output


class MetricValue(_Frozen):
    """A score, or ``unmeasured`` with the reason (a failed row, a judge that did not
    answer, a metric that needs a reference the row lacks). Never NaN: a non-finite score
    is refused here, so it cannot reach a mean."""

    value: float | None = None
    reason: str | None = None

    @field_validator("value")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError(f"a metric value must be finite, got {value!r}")
        return value

    @classmethod
    def of(cls, value: float) -> MetricValue:
        """A score; a non-finite one becomes unmeasured (its reason says so)."""
        if not math.isfinite(value):
            return cls(reason=f"the metric returned {value!r}")
        return cls(value=float(value))

    @classmethod
    def unmeasured(cls, reason: str) -> MetricValue:
        return cls(reason=reason)

    @property
    def measured(self) -> bool:
        return self.value is not None
