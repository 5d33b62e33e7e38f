"""What the pair verifier and the error bound do on labelled pairs (``genai cache calibrate
--verifier``).

    report = calibrate_verifier(pairs, embedder=embedder, scorer=PairVerifier(),
                                threshold=0.8, max_errors=(0.05, 0.02))
    report.rows        # rules only; + verifier; + verifier under each max_error

A pair reaches the verifier where the cache's rules would answer it (cosine at least
``threshold`` and no lexical veto, as :func:`cache.calibrate` counts a hit); the verifier
then keeps it where its score is at least 0.5, or, under a ``max_error``, where the bound's
estimate for that score is at most it — the calibration's estimate, before any project's
evidence moves it (:class:`cache.ErrorBound` over the verifier's curve). Each row gives the
hits, the false hits among them, precision and hit rate (hits per pair) and recall.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cache._bound import ErrorBound, ErrorCurve
from cache._calibrate import LabelledPair, _similarities
from cache._judge import PairScorer, check_max_error
from cache._verify import LexicalVerifier, Verifier
from genai.errors import ValidationError

if TYPE_CHECKING:
    from genai.models import Embedder

__all__ = ["VerifierCalibration", "VerifierRow", "calibrate_verifier"]


@dataclass(frozen=True)
class VerifierRow:
    name: str
    max_error: float | None
    hits: int
    false_hits: int
    precision: float  # 1.0 when nothing is a hit
    hit_rate: float  # hits per pair
    recall: float


@dataclass(frozen=True)
class VerifierCalibration:
    threshold: float
    pairs: int
    positives: int
    reached_verifier: int
    rows: list[VerifierRow] = field(default_factory=list)


def calibrate_verifier(
    pairs: Sequence[LabelledPair],
    *,
    scorer: PairScorer,
    curve: ErrorCurve,
    threshold: float,
    embedder: Embedder | None = None,
    scores: Sequence[float] | None = None,
    verifier: Verifier | None = LexicalVerifier(),
    max_errors: Sequence[float] = (0.05, 0.02, 0.01),
) -> VerifierCalibration:
    """Precision and hit rate on ``pairs`` with the rules, the verifier and the bound."""
    if not pairs:
        raise ValidationError("calibrate needs labelled pairs", field="pairs")
    for max_error in max_errors:
        check_max_error(max_error)
    similarity = list(scores) if scores is not None else _similarities(pairs, embedder)
    reach = [
        i
        for i, p in enumerate(pairs)
        if similarity[i] >= threshold
        and (verifier is None or verifier.reject(p.query, p.cached) is None)
    ]
    judged = {i: scorer.same(pairs[i].query, [pairs[i].cached])[0] for i in reach}
    bound = ErrorBound(curve)  # the calibration's estimates: no project's evidence
    estimate = {i: bound.estimate(0, score) for i, score in judged.items()}
    positives = sum(p.same for p in pairs)
    rows = [
        _row(pairs, positives, "rules only", None, reach),
        _row(pairs, positives, "rules + verifier", None, [i for i in reach if judged[i] >= 0.5]),
    ]
    for max_error in sorted(max_errors, reverse=True):
        kept = [i for i in reach if estimate[i] <= max_error]
        rows.append(_row(pairs, positives, "rules + verifier + bound", max_error, kept))
    return VerifierCalibration(threshold, len(pairs), positives, len(reach), rows)


def _row(
    pairs: Sequence[LabelledPair],
    positives: int,
    name: str,
    max_error: float | None,
    hits: list[int],
) -> VerifierRow:
    false_hits = sum(not pairs[i].same for i in hits)
    right = len(hits) - false_hits
    return VerifierRow(
        name=name,
        max_error=max_error,
        hits=len(hits),
        false_hits=false_hits,
        precision=right / len(hits) if hits else 1.0,
        hit_rate=len(hits) / len(pairs),
        recall=right / positives if positives else 0.0,
    )
