"""The last word on a semantic hit: the trained pair verifier, read through the error bound.

The lexical rules (``cache/_verify.py``) and the margin pick one candidate, or none; only
then is the pair verifier asked about that one (a hit can become a miss here, a miss never
becomes a hit, and a lookup the rules already missed costs no forward pass). Its score is
read as a probability of being wrong through the project's :class:`~cache._bound.ErrorBound`:

- with the project's ``cache.max_error`` set, the hit stands where that estimate is at or
  under it;
- without it, where the model judges the pair the same question (score >= 0.5).

Either way the hit is counted in the project's evidence, and the cache's hit log keeps its
deployment and score, so that feedback calling it wrong (``SemanticCache.feedback``, in any
process) or a sampled re-check (``SemanticCache.recheck``) tightens the project's
estimates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from cache._bound import BoundStats, ErrorBound, ErrorCurve
from genai.errors import ValidationError

__all__ = ["Judgement", "PairJudge", "PairScorer", "check_max_error"]


@runtime_checkable
class PairScorer(Protocol):
    """Scores cached questions against a new one: per candidate, the probability that its
    answer is right for the query (``cache.PairVerifier`` is the shipped one)."""

    def same(self, query: str, candidates: Sequence[str]) -> list[float]: ...


@dataclass(frozen=True)
class Judgement:
    accept: bool
    score: float  # the verifier's
    estimated_error: float  # the bound's estimate of P(wrong) for this project


def check_max_error(max_error: float | None) -> None:
    if max_error is not None and not 0 < max_error < 1:
        raise ValidationError(
            f"max_error must be a probability in (0, 1), e.g. 0.02, not {max_error}",
            field="max_error",
        )


class PairJudge:
    """A pair scorer and the error bound its scores are read through."""

    def __init__(self, scorer: PairScorer, bound: ErrorBound | None = None) -> None:
        if bound is None:
            artefact = getattr(scorer, "artefact", None)
            calibration = getattr(artefact, "calibration", None)
            if calibration is None:
                raise ValidationError(
                    "give the error bound for a pair scorer that ships no calibration "
                    "(cache.ErrorBound(cache.ErrorCurve(...)))",
                    field="error_bound",
                )
            bound = ErrorBound(ErrorCurve.from_dict(calibration))
        self.scorer = scorer
        self.bound = bound

    def judge(
        self,
        project_id: int,
        deployment: str,
        query: str,
        cached: str,
        *,
        max_error: float | None,
    ) -> Judgement:
        score = self.scorer.same(query, [cached])[0]
        estimate = self.bound.estimate(project_id, score)
        accept = estimate <= max_error if max_error is not None else score >= 0.5
        if accept:  # the cache's hit log remembers the request (feedback finds it there)
            self.bound.hit(project_id, "", score, deployment=deployment)
        return Judgement(accept, score, estimate)

    def stats(self, project_id: int) -> BoundStats:
        return self.bound.stats(project_id)
