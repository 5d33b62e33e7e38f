"""Choosing the similarity threshold from labelled pairs, for a target precision.

    pairs = load_pairs("pairs.jsonl")          # {"query": ..., "cached": ..., "label": 1}
    result = calibrate(pairs, 0.98, embedder=embedder)
    result.threshold                            # the lowest that keeps precision >= 0.98

A pair is a new question and a cached one, labelled 1 when the cached answer is right for
the new question. A pair is a hit at threshold ``t`` when its cosine similarity is at least
``t`` and the verifier accepts it (the cache's own second check, so the threshold is
calibrated for the cache as it runs). The threshold chosen is the lowest on the grid at
which precision reaches the target *and stays there at every higher threshold* — a dip
just above the choice would make it luck, not a calibration — and that still has hits.

Calibrate on data like your traffic and never on the pairs you report precision on.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cache._verify import LexicalVerifier, Verifier
from genai.errors import ValidationError

if TYPE_CHECKING:
    from genai.models import Embedder

__all__ = ["Calibration", "CalibrationRow", "LabelledPair", "calibrate", "load_pairs"]


@dataclass(frozen=True)
class LabelledPair:
    query: str
    cached: str
    same: bool  # the cached answer is right for the query


@dataclass(frozen=True)
class CalibrationRow:
    threshold: float
    hits: int
    false_hits: int
    precision: float  # 1.0 when nothing is a hit
    recall: float


@dataclass(frozen=True)
class Calibration:
    """The threshold chosen (None when no threshold reaches the target) and the table."""

    threshold: float | None
    target: float
    pairs: int
    positives: int
    rejected_by_verifier: int
    table: list[CalibrationRow] = field(default_factory=list)

    @property
    def chosen(self) -> CalibrationRow | None:
        return next((r for r in self.table if r.threshold == self.threshold), None)


def load_pairs(path: str | Path) -> list[LabelledPair]:
    """Pairs from a JSON-lines file. Each line is one of
    ``{"query", "cached", "label"}``, ``{"a", "b", "label"}``,
    ``{"question1", "question2", "is_duplicate"}`` (Quora) or ``{"origin", "similar"}``
    (GPTCache's mock data: always a paraphrase). ``label`` is 1/0 or true/false."""
    source = Path(path)
    if not source.is_file():
        raise ValidationError(f"no pairs file at {source}", field="pairs")
    pairs = []
    for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            pairs.append(_pair(json.loads(line)))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise ValidationError(
                f"{source}:{number}: not a labelled pair ({error}): write one JSON object per "
                'line, like {"query": "...", "cached": "...", "label": 1}',
                field="pairs",
            ) from None
    if not pairs:
        raise ValidationError(f"{source} holds no pairs", field="pairs")
    return pairs


def _pair(row: dict[str, Any]) -> LabelledPair:
    if "origin" in row and "similar" in row:
        return LabelledPair(str(row["similar"]), str(row["origin"]), True)
    for a, b, label in (
        ("query", "cached", "label"),
        ("a", "b", "label"),
        ("question1", "question2", "is_duplicate"),
    ):
        if a in row and b in row:
            value = row[label]
            if isinstance(value, str):
                value = value.strip().lower() in ("1", "true", "yes")
            return LabelledPair(str(row[a]), str(row[b]), bool(int(value)))
    raise KeyError("query/cached/label")


def calibrate(
    pairs: Sequence[LabelledPair],
    precision: float,
    *,
    embedder: Embedder | None = None,
    scores: Sequence[float] | None = None,
    verifier: Verifier | None = LexicalVerifier(),
    grid: Iterable[float] | None = None,
) -> Calibration:
    """The lowest threshold whose precision on ``pairs`` is at least ``precision``.

    Give an ``embedder`` (the cache's) or the pairs' cosine ``scores`` computed elsewhere.
    """
    if not 0 < precision <= 1:
        raise ValidationError(f"precision must be in (0, 1], not {precision}", field="precision")
    if not pairs:
        raise ValidationError("calibrate needs labelled pairs", field="pairs")
    similarity = list(scores) if scores is not None else _similarities(pairs, embedder)
    if len(similarity) != len(pairs):
        raise ValidationError("give one score per pair", field="scores")
    accepted = [verifier is None or verifier.reject(p.query, p.cached) is None for p in pairs]
    positives = sum(p.same for p in pairs)
    steps = sorted(set(grid)) if grid is not None else [round(0.5 + i / 100, 2) for i in range(50)]
    table = []
    for threshold in steps:
        hit = [ok and s >= threshold for ok, s in zip(accepted, similarity, strict=True)]
        hits = sum(hit)
        false_hits = sum(h and not p.same for h, p in zip(hit, pairs, strict=True))
        table.append(
            CalibrationRow(
                threshold=threshold,
                hits=hits,
                false_hits=false_hits,
                precision=(hits - false_hits) / hits if hits else 1.0,
                recall=(hits - false_hits) / positives if positives else 0.0,
            )
        )
    chosen = None
    for index, row in enumerate(table):
        if all(later.precision >= precision for later in table[index:]):
            chosen = row.threshold if row.hits else None  # no hit at all calibrates nothing
            break
    return Calibration(
        threshold=chosen,
        target=precision,
        pairs=len(pairs),
        positives=positives,
        rejected_by_verifier=accepted.count(False),
        table=table,
    )


def _similarities(pairs: Sequence[LabelledPair], embedder: Embedder | None) -> list[float]:
    import numpy as np

    if embedder is None:
        raise ValidationError("give the embedder the cache uses (or precomputed scores)")
    queries = np.asarray(embedder.embed([p.query for p in pairs]), dtype=np.float32)
    cached = np.asarray(embedder.embed([p.cached for p in pairs]), dtype=np.float32)
    norms = np.linalg.norm(queries, axis=1) * np.linalg.norm(cached, axis=1)
    return [float(x) for x in (queries * cached).sum(axis=1) / np.where(norms == 0, 1, norms)]
