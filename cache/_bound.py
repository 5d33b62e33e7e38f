"""A user-set error bound: answer from the cache only where a wrong hit is unlikely enough.

    bound = ErrorBound(ErrorCurve.from_dict(artefact.calibration))
    p = bound.estimate(project_id, verifier_score)     # P(wrong | score), this project
    p <= max_error                                     # answer, else a miss
    bound.hit(project_id, request_id, verifier_score, deployment="chat")  # it answered
    bound.error(project_id, request_id)                # /v1/feedback said it was wrong
    bound.rechecked(project_id, verifier_score, wrong=True, deployment="chat")  # re-asked

The verifier's score is not a probability of being right on anyone's traffic; the curve is.
It is fitted at build time (``cache/train_verifier.py``) on held-out pairs that reach the
verifier in a cache (cosine >= 0.5 and no lexical veto): the scores are sorted and pooled
into blocks by isotonic regression (pool-adjacent-violators), so the estimated error never
rises with the score, and each block keeps its count. A block's error is estimated as
(wrong + 0.5) / (n + 1), never 0 from a finite sample, and at least any higher block's.

Traffic differs from any calibration set, so each project's estimate moves with its own
evidence: a block's estimate is the calibration's, worth ``prior_weight`` pairs at most,
plus the project's hits in that block and the ones labelled wrong — by feedback, or by a
sampled re-check that asked the model again and got an answer that disagrees
(``cache.recheck_rate``, ``apps/_cache.py``). Hits nobody labels count as right. The
per-block estimates are then made non-increasing in the score from the top down, so a
complaint about a high-scoring hit also tightens every lower score. With a correct
calibration each answered hit has P(wrong) at or under the bound, so the share of wrong
hits stays under it too; when traffic is harder than the calibration, the labelled errors
raise the estimates until it does again.

The evidence is kept per project, deployment, curve and block in an
:class:`~cache._evidence.Evidence` store: in this process by default, in the platform's
database (``cache_estimates``) when the cache has a store, where every gateway process adds
to it and reads a project's rows again after ``ttl_s`` (10 s, as the gateway trusts keys and
routes): estimates are shared by the processes and survive a restart. The estimate is the
project's, pooled over its deployments; ``genai cache stats`` reports each deployment.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cache._evidence import EVIDENCE, Evidence, EvidenceRows, MemoryEvidence, wilson
from genai.errors import ValidationError

__all__ = ["BoundStats", "ErrorBound", "ErrorCurve", "fit_curve"]

#: Projects whose evidence a bound keeps read (least recently used out).
_MAX_PROJECTS = 10_000


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

    def digest(self) -> str:
        """What names this curve's blocks in the stored evidence (32 hex digits)."""
        raw = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(raw.encode()).hexdigest()[:32]

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
    """Semantic hits judged by the bound (a project's, or one deployment's): how many, their
    mean estimated error when answered, how many feedback reported wrong, how many were
    re-checked against a fresh answer and how many of those disagreed."""

    hits: int
    estimated_error: float
    reported_wrong: int
    rechecked: int = 0
    recheck_wrong: int = 0

    @property
    def labelled_wrong(self) -> int:
        return self.reported_wrong + self.recheck_wrong

    @property
    def observed_error(self) -> float:
        """Labelled errors per judged hit (a floor: a wrong hit nobody labels counts right)."""
        return min(1.0, self.labelled_wrong / self.hits) if self.hits else 0.0

    @property
    def observed_interval(self) -> tuple[float, float]:
        """The 95% Wilson interval of :attr:`observed_error`."""
        return wilson(min(self.labelled_wrong, self.hits), self.hits)

    @property
    def recheck_interval(self) -> tuple[float, float]:
        """The 95% Wilson interval of the re-checked hits' error rate."""
        return wilson(self.recheck_wrong, self.rechecked)

    @classmethod
    def of(cls, blocks: Iterable[Mapping[str, float]]) -> BoundStats:
        """The totals of some blocks' counts."""
        rows = list(blocks)
        total = {name: sum(float(c.get(name, 0)) for c in rows) for name in EVIDENCE}
        hits = int(total["hits"])
        return cls(
            hits,
            total["estimated"] / hits if hits else 0.0,
            int(total["reported"]),
            int(total["rechecked"]),
            int(total["recheck_wrong"]),
        )


@dataclass
class _Project:
    rows: EvidenceRows
    until: float  # read again after this (the bound's clock)
    estimates: list[float] = field(default_factory=list)  # per block, or [] until asked


class ErrorBound:
    """Per-project estimates of P(wrong | verifier score), from the calibration and the
    project's evidence (``evidence``: in this process unless given); thread-safe.

    A store that shares the evidence between processes is read again after ``ttl_s`` on
    ``clock``; this process's own labelled errors are written and read back at once."""

    def __init__(
        self,
        curve: ErrorCurve,
        *,
        prior_weight: float = 50.0,
        remember: int = 100_000,
        evidence: Evidence | None = None,
        ttl_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if prior_weight <= 0:
            raise ValidationError(f"prior_weight must be above 0, not {prior_weight}")
        self.curve = curve
        self.curve_id = curve.digest()
        self.prior_weight = prior_weight
        self.evidence: Evidence = evidence if evidence is not None else MemoryEvidence()
        self.shared = evidence is not None
        self.ttl_s = ttl_s
        self._clock = clock
        self._remember = remember
        self._projects: OrderedDict[int, _Project] = OrderedDict()
        self._answers: OrderedDict[tuple[int, str], tuple[str, int]] = OrderedDict()
        self._lock = threading.Lock()

    def share(self, evidence: Evidence) -> None:
        """Keep the evidence in ``evidence`` from now on (a cache with a store gives its
        own), unless the bound was built with a store of its own."""
        if self.shared:
            return
        with self._lock:
            self.evidence, self.shared = evidence, True
            self._projects.clear()

    def estimate(self, project_id: int, score: float) -> float:
        """The estimated probability that a hit with this verifier score is wrong."""
        return self._estimates(project_id)[self.curve.block(score)]

    def threshold(self, project_id: int, max_error: float) -> float | None:
        """The lowest verifier score the project answers at under ``max_error`` (None:
        none); what ``genai cache stats`` reports."""
        estimates = self._estimates(project_id)
        ok = [i for i, p in enumerate(estimates) if p <= max_error]
        return self.curve.edges[ok[0]] if ok else None

    def hit(self, project_id: int, request_id: str, score: float, *, deployment: str = "") -> None:
        """A hit answered with this score (feedback on ``request_id`` may follow: it is
        remembered in this process for :meth:`error`; give "" where the caller keeps it)."""
        index = self.curve.block(score)
        estimate = self._estimates(project_id)[index]
        self._add(project_id, deployment, index, {"hits": 1, "estimated": estimate})
        if request_id:
            with self._lock:
                self._answers[(project_id, request_id)] = (deployment, index)
                while len(self._answers) > self._remember:
                    self._answers.popitem(last=False)

    def error(self, project_id: int, request_id: str) -> bool:
        """Feedback said the hit that answered ``request_id`` (remembered by :meth:`hit`)
        was wrong; whether that hit is known here (once per request)."""
        with self._lock:
            found = self._answers.pop((project_id, request_id), None)
        if found is None:
            return False
        self._label(project_id, found[0], found[1], {"reported": 1})
        return True

    def wrong(self, project_id: int, score: float, *, deployment: str = "") -> None:
        """Feedback said a hit answered with this score was wrong."""
        self._label(project_id, deployment, self.curve.block(score), {"reported": 1})

    def rechecked(
        self, project_id: int, score: float, *, wrong: bool, deployment: str = ""
    ) -> None:
        """A hit answered with this score was asked of the model again: whether the fresh
        answer disagreed (a labelled error) or not."""
        counts = {"rechecked": 1, "recheck_wrong": int(wrong)}
        self._label(project_id, deployment, self.curve.block(score), counts)

    def stats(self, project_id: int) -> BoundStats:
        """The project's judged hits, over all its deployments."""
        rows = self._rows(project_id)
        return BoundStats.of(c for blocks in rows.values() for c in blocks.values())

    def deployment_stats(self, project_id: int) -> dict[str, BoundStats]:
        """The project's judged hits per deployment."""
        rows = self._rows(project_id)
        return {d: BoundStats.of(blocks.values()) for d, blocks in sorted(rows.items())}

    def forget(self, project_id: int | None = None) -> None:
        """Read the evidence (of one project, or all) again on the next estimate."""
        with self._lock:
            if project_id is None:
                self._projects.clear()
            else:
                self._projects.pop(project_id, None)

    # ------------------------------------------------------------ internals

    def _add(
        self, project_id: int, deployment: str, index: int, counts: Mapping[str, float]
    ) -> None:
        self.evidence.add(project_id, deployment, self.curve_id, index, counts)
        if self.evidence.live:
            self.forget(project_id)

    def _label(
        self, project_id: int, deployment: str, index: int, counts: Mapping[str, float]
    ) -> None:
        """A labelled hit: rare, and what the estimates are for; written at once, and this
        process reads the project's evidence again."""
        self.evidence.add(project_id, deployment, self.curve_id, index, counts)
        self.evidence.flush()
        self.forget(project_id)

    def _state(self, project_id: int) -> _Project:
        with self._lock:
            state = self._projects.get(project_id)
            if state is not None and state.until > self._clock():
                self._projects.move_to_end(project_id)
                return state
        rows = self.evidence.read(project_id, self.curve_id)  # outside the lock: I/O
        state = _Project(rows, self._clock() + self.ttl_s)
        with self._lock:
            self._projects[project_id] = state
            self._projects.move_to_end(project_id)
            while len(self._projects) > _MAX_PROJECTS:
                self._projects.popitem(last=False)
        return state

    def _rows(self, project_id: int) -> EvidenceRows:
        return self._state(project_id).rows

    def _estimates(self, project_id: int) -> list[float]:
        state = self._state(project_id)
        if state.estimates:
            return state.estimates
        blocks = len(self.curve.edges)
        hits, wrong = [0.0] * blocks, [0.0] * blocks
        for per_block in state.rows.values():
            for index, counts in per_block.items():
                if 0 <= index < blocks:
                    hits[index] += counts.get("hits", 0.0)
                    wrong[index] += counts.get("reported", 0.0) + counts.get("recheck_wrong", 0.0)
        estimates = []
        for i, n in enumerate(self.curve.counts):
            weight = min(float(n), self.prior_weight)
            prior = self.curve.p_wrong(i)
            # a labelled error is a judged hit, even where the hit itself was not counted
            judged = max(hits[i], wrong[i])
            estimates.append((weight * prior + wrong[i]) / (weight + judged))
        # never rising with the score: a block is at least as wrong as any above it
        for i in range(len(estimates) - 2, -1, -1):
            estimates[i] = max(estimates[i], estimates[i + 1])
        state.estimates = estimates
        return estimates
