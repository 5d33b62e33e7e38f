"""A user-set error bound: answer from the cache only where a wrong hit is unlikely enough.

    bound = ErrorBound(ErrorCurve.from_dict(artefact.calibration))
    p = bound.estimate(project_id, verifier_score)     # P(wrong | score), this project
    p <= max_error                                     # answer, else a miss
    bound.hit(project_id, request_id, verifier_score)  # remember what answered
    bound.error(project_id, request_id)                # /v1/feedback said it was wrong

The verifier's score is not a probability of being right on anyone's traffic; the curve is.
It is fitted at build time (``cache/train_verifier.py``) on held-out pairs that reach the
verifier in a cache (cosine >= 0.5 and no lexical veto): the scores are sorted and pooled
into blocks by isotonic regression (pool-adjacent-violators), so the estimated error never
rises with the score, and each block keeps its count. A block's error is estimated as
(wrong + 0.5) / (n + 1), never 0 from a finite sample, and at least any higher block's.

Traffic differs from any calibration set, so each project's estimate moves with its own
feedback: a block's estimate is the calibration's, worth ``prior_weight`` pairs at most,
plus the project's hits in that block and the ones reported wrong. Hits nobody complains
about count as right (feedback is the only label there is; sampled re-checks against a
fresh answer would give more, and are not built yet). The per-block estimates are then made
non-increasing in the score from the top down, so a complaint about a high-scoring hit also
tightens every lower score. With a correct calibration each answered hit has P(wrong) at or
under the bound, so the share of wrong hits stays under it too; when traffic is harder than
the calibration, the reported errors raise the estimates until it does again.

The state lives in this process (a few counters per project and block, plus which block
answered each of the last ``remember`` requests, for feedback to find).
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from genai.errors import ValidationError

__all__ = ["BoundStats", "ErrorBound", "ErrorCurve", "fit_curve"]


@dataclass(frozen=True)
class ErrorCurve:
    """P(wrong | score) as a step function: block ``i`` covers scores from ``edges[i]`` up
    to the next edge (the first block also covers everything below it)."""

    edges: tuple[float, ...]
    counts: tuple[int, ...]
    wrong: tuple[int, ...]
    _smoothed: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.edges or not len(self.edges) == len(self.counts) == len(self.wrong):
            raise ValidationError("an error curve needs one count and one error per block")
        if list(self.edges) != sorted(self.edges) or min(self.counts) < 1:
            raise ValidationError("an error curve's block edges must rise, each block counted")
        # (wrong + 0.5) / (n + 1) can rise again where a small block follows a big one:
        # each block is held at least as wrong as any block above it
        smoothed = [(w + 0.5) / (n + 1) for w, n in zip(self.wrong, self.counts, strict=True)]
        for i in range(len(smoothed) - 2, -1, -1):
            smoothed[i] = max(smoothed[i], smoothed[i + 1])
        object.__setattr__(self, "_smoothed", tuple(smoothed))

    def block(self, score: float) -> int:
        return max(0, bisect.bisect_right(self.edges, score) - 1)

    def p_wrong(self, index: int) -> float:
        return self._smoothed[index]

    def at(self, score: float) -> float:
        return self.p_wrong(self.block(score))

    def to_dict(self) -> dict[str, Any]:
        return {"edges": list(self.edges), "counts": list(self.counts), "wrong": list(self.wrong)}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ErrorCurve:
        return cls(
            tuple(float(x) for x in raw["edges"]),
            tuple(int(x) for x in raw["counts"]),
            tuple(int(x) for x in raw["wrong"]),
        )


def fit_curve(scores: Sequence[float], wrong: Sequence[bool]) -> ErrorCurve:
    """Isotonic regression of "wrong" on the score (non-increasing), keeping each block's
    count: pool-adjacent-violators over the pairs sorted by score, on smoothed rates."""
    if len(scores) != len(wrong) or not scores:
        raise ValidationError("fit_curve needs one label per score, and at least one")
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    # the error rate must not rise with the score: pool a block whose rate is at or above
    # the one before it; then again on the smoothed rates, so that a short run of right
    # pairs at the top (3 right: 0.5 / 4) joins the block below instead of standing alone
    blocks: list[list[float]] = []  # [lowest score, count, wrong]
    for i in order:
        _pool(blocks, [float(scores[i]), 1.0, float(bool(wrong[i]))], _raw)
    smooth: list[list[float]] = []
    for block in blocks:
        _pool(smooth, block, _rate)
    blocks = smooth
    return ErrorCurve(
        tuple(b[0] for b in blocks),
        tuple(int(b[1]) for b in blocks),
        tuple(int(b[2]) for b in blocks),
    )


def _pool(
    blocks: list[list[float]], block: list[float], rate: Callable[[list[float]], float]
) -> None:
    blocks.append(list(block))
    while len(blocks) > 1 and rate(blocks[-1]) >= rate(blocks[-2]):
        last = blocks.pop()
        blocks[-1][1] += last[1]
        blocks[-1][2] += last[2]


def _raw(block: list[float]) -> float:
    return block[2] / block[1]


def _rate(block: list[float]) -> float:
    return (block[2] + 0.5) / (block[1] + 1)


@dataclass(frozen=True)
class BoundStats:
    """A project's hits judged by the bound: how many, their mean estimated error when
    answered, and how many feedback reported wrong."""

    hits: int
    estimated_error: float
    reported_wrong: int

    @property
    def observed_error(self) -> float:
        return self.reported_wrong / self.hits if self.hits else 0.0


@dataclass
class _Project:
    hits: list[int]
    wrong: list[int]
    answered: int = 0
    estimated: float = 0.0
    reported: int = 0
    cache: list[float] = field(default_factory=list)  # the estimates per block, or []


class ErrorBound:
    """Per-project estimates of P(wrong | verifier score), from the calibration and the
    project's feedback; thread-safe."""

    def __init__(
        self, curve: ErrorCurve, *, prior_weight: float = 50.0, remember: int = 100_000
    ) -> None:
        if prior_weight <= 0:
            raise ValidationError(f"prior_weight must be above 0, not {prior_weight}")
        self.curve = curve
        self.prior_weight = prior_weight
        self._remember = remember
        self._projects: dict[int, _Project] = {}
        self._answers: OrderedDict[tuple[int, str], int] = OrderedDict()
        self._lock = threading.Lock()

    def estimate(self, project_id: int, score: float) -> float:
        """The estimated probability that a hit with this verifier score is wrong."""
        with self._lock:
            return self._estimates(project_id)[self.curve.block(score)]

    def threshold(self, project_id: int, max_error: float) -> float | None:
        """The lowest verifier score the project answers at under ``max_error`` (None:
        none); what ``genai cache stats`` reports."""
        with self._lock:
            estimates = self._estimates(project_id)
        ok = [i for i, p in enumerate(estimates) if p <= max_error]
        return self.curve.edges[ok[0]] if ok else None

    def hit(self, project_id: int, request_id: str, score: float) -> None:
        """A hit answered with this score (feedback on ``request_id`` may follow)."""
        index = self.curve.block(score)
        with self._lock:
            state = self._state(project_id)
            state.answered += 1
            state.estimated += self._estimates(project_id)[index]
            state.hits[index] += 1
            state.cache = []
            if request_id:
                self._answers[(project_id, request_id)] = index
                while len(self._answers) > self._remember:
                    self._answers.popitem(last=False)

    def error(self, project_id: int, request_id: str) -> bool:
        """Feedback said the hit that answered ``request_id`` was wrong; whether that hit
        is known here (once per request)."""
        with self._lock:
            index = self._answers.pop((project_id, request_id), None)
            if index is None:
                return False
            state = self._state(project_id)
            state.wrong[index] += 1
            state.reported += 1
            state.cache = []
            return True

    def stats(self, project_id: int) -> BoundStats:
        with self._lock:
            state = self._projects.get(project_id)
            if state is None:
                return BoundStats(0, 0.0, 0)
            mean = state.estimated / state.answered if state.answered else 0.0
            return BoundStats(state.answered, mean, state.reported)

    def _state(self, project_id: int) -> _Project:
        state = self._projects.get(project_id)
        if state is None:
            blocks = len(self.curve.edges)
            state = self._projects[project_id] = _Project([0] * blocks, [0] * blocks)
        return state

    def _estimates(self, project_id: int) -> list[float]:
        state = self._projects.get(project_id)
        if state is None:
            return self._prior()
        if not state.cache:
            estimates = []
            for i, n in enumerate(self.curve.counts):
                weight = min(float(n), self.prior_weight)
                prior = self.curve.p_wrong(i)
                estimates.append((weight * prior + state.wrong[i]) / (weight + state.hits[i]))
            # never rising with the score: a block is at least as wrong as any above it
            for i in range(len(estimates) - 2, -1, -1):
                estimates[i] = max(estimates[i], estimates[i + 1])
            state.cache = estimates
        return state.cache

    def _prior(self) -> list[float]:
        return [self.curve.p_wrong(i) for i in range(len(self.curve.edges))]
