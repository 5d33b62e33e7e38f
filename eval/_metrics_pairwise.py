"""The pairwise judge: which of two answers to the same row is better, the candidate's or
the baseline run's.

A judge deployment sees the question and both answers, labelled A and B, and names the
winner (or a tie) in JSON. Judges favour a position, so by default each row is asked
twice with the answers swapped, and the two verdicts are averaged: a candidate that wins
both ways scores 1, a tie or a split 0.5, a loss 0. The mean is the candidate's win rate,
with its CI like any metric; 0.5 is "no better, no worse".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eval._metric import MetricEnv
from eval._metrics_model import _describe, _first_object, _pick_judge, _Unparsed
from eval._metrics_text import unmeasurable
from eval._types import Answer, MetricKind, MetricValue, Sample
from genai.errors import ValidationError
from genai.validation import check_metric_name

__all__ = ["PairwiseJudge"]

DEFAULT_CRITERIA = (
    "Which answer is better: more correct, more helpful, and no less faithful to what the "
    "question asks?"
)
_SYSTEM = (
    "You compare two answers to the same question. Reply with one JSON object and nothing "
    'else: {"winner": "A" or "B" or "tie", "reason": "<one sentence>"}'
)
_WINS = {"A": 1.0, "B": 0.0, "TIE": 0.5}


class PairwiseJudge:
    """The candidate's answer against the baseline run's answer to the same row."""

    kind: MetricKind = "continuous"
    higher_is_better = True
    bounds: tuple[float | None, float | None] = (0.0, 1.0)
    uses_baseline = True  # its values depend on which run is the baseline

    def __init__(
        self,
        *,
        judge: str,
        criteria: str = DEFAULT_CRITERIA,
        swap: bool = True,
        retries: int = 2,
        name: str | None = None,
        env: MetricEnv | None = None,
    ) -> None:
        self.name = "pairwise_judge" if name is None else check_metric_name(name)
        self._judge = _pick_judge(judge, env)
        self._baseline: Mapping[str, Answer] = env.baseline if env is not None else {}
        if not self._baseline:
            raise ValidationError(
                "pairwise_judge compares with a baseline run: run with --baseline EVAL or a "
                "target (eval.run(..., baseline=...))",
                field="baseline",
            )
        if not criteria.strip():
            raise ValidationError("criteria is empty", field="criteria")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValidationError(f"retries is 0 or more, not {retries!r}", field="retries")
        self.criteria, self.swap, self.retries = criteria, bool(swap), retries

    async def score(self, sample: Sample) -> MetricValue:
        problem = unmeasurable(sample, needs_reference=False)
        if problem is not None:
            return MetricValue.unmeasured(problem)
        base = self._baseline.get(sample.row.id)
        if base is None or base.error is not None:
            return MetricValue.unmeasured("the baseline has no answer to this row")
        orders = [(sample.output, base.output, False)]
        if self.swap:
            orders.append((base.output, sample.output, True))
        wins = []
        for first, second, swapped in orders:
            verdict = await self._ask(sample.row.prompt, first, second)
            if isinstance(verdict, str):
                return MetricValue.unmeasured(verdict)
            wins.append(1.0 - verdict if swapped else verdict)
        return MetricValue.of(sum(wins) / len(wins))

    async def _ask(self, question: str, a: str, b: str) -> float | str:
        """The first answer's win (1, 0.5 or 0), or the reason there is none."""
        messages = [
            {"role": "system", "content": _SYSTEM},
            {
                "role": "user",
                "content": f"{self.criteria}\n\nQuestion: {question}\n\n"
                f"Answer A:\n{a or '(empty)'}\n\nAnswer B:\n{b or '(empty)'}",
            },
        ]
        last = "the judge was not asked"
        for _ in range(self.retries + 1):
            try:
                reply = await self._judge(messages, _FORMAT)
            except Exception as error:  # a judge failure is a reason, never a crash
                last = f"the judge failed: {_describe(error)}"
                continue
            try:
                return _winner(str(reply))
            except _Unparsed as error:
                last = f"the judge's answers did not parse: {error}"
        return last


def _winner(text: str) -> float:
    verdict = _first_object(text)
    if verdict is None:
        raise _Unparsed("no JSON object in the reply")
    winner = verdict.get("winner")
    key = winner.strip().upper() if isinstance(winner, str) else None
    if key not in _WINS:
        raise _Unparsed(f"the verdict names no winner A, B or tie (winner: {winner!r})")
    return _WINS[key]


_FORMAT: dict[str, Any] = {
    "type": "json_schema",
    "json_schema": {
        "name": "pairwise_verdict",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {
                "winner": {"type": "string", "enum": ["A", "B", "tie"]},
                "reason": {"type": "string"},
            },
            "required": ["winner", "reason"],
            "additionalProperties": False,
        },
    },
}
