"""Scoring cache answers against a labelled set, threshold sweeps, latency percentiles."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from _cache_data import Dataset


def score(ds: Dataset, answers: Sequence[str | None]) -> dict[str, Any]:
    """Hits, correct, wrong, misses, precision and hit rate of one run over ``ds``.

    correct: a paraphrase query answered with its own entry's answer. wrong: any other hit —
    ``wrong_entry`` (a paraphrase query answered with another entry's answer) plus
    ``false_hits`` (a must-miss query answered at all). hit rate: correct / paraphrase
    queries (recall). precision: correct / hits.
    """
    correct = wrong_entry = false_hits = own_pair = misses = missed_positives = 0
    for answer, accept, own in zip(answers, ds.accept, ds.own, strict=True):
        if answer is None:
            misses += 1
            missed_positives += bool(accept)
        elif not accept:
            false_hits += 1
            own_pair += answer in own
        elif answer in accept:
            correct += 1
        else:
            wrong_entry += 1
    hits = correct + wrong_entry + false_hits
    return {
        "queries": len(answers),
        "paraphrase_queries": ds.positives,
        "must_miss_queries": ds.negatives,
        "hits": hits,
        "correct": correct,
        "wrong": wrong_entry + false_hits,
        "wrong_entry": wrong_entry,
        "false_hits": false_hits,
        "false_hits_on_own_pair": own_pair,  # the rest landed on another pair's sentence
        "misses": misses,
        "missed_paraphrases": missed_positives,
        "precision": correct / hits if hits else None,
        "hit_rate": correct / ds.positives if ds.positives else None,
        "false_hit_rate": false_hits / ds.negatives if ds.negatives else None,
    }


def f1(row: dict[str, Any]) -> float:
    p, r = row["precision"] or 0.0, row["hit_rate"] or 0.0
    return 2 * p * r / (p + r) if p + r else 0.0


def derived_sweep(
    ds: Dataset, top: Sequence[str | None], scores: Sequence[float | None], grid: Sequence[float]
) -> list[dict[str, Any]]:
    """Scores at each threshold from one run that returned every query's nearest answer.

    Valid for GPTCache with its defaults (top_k 1, one candidate): a lookup hits at threshold
    t exactly when the nearest entry's similarity (rank / max rank) is >= t.
    """
    rows = []
    for t in grid:
        answers = [
            a if s is not None and s >= t else None for a, s in zip(top, scores, strict=True)
        ]
        rows.append({"threshold": round(float(t), 4)} | score(ds, answers))
    return rows


def best_f1(sweep: list[dict[str, Any]]) -> dict[str, Any]:
    return max(sweep, key=lambda r: (f1(r), r["precision"] or 0.0))


def best_at_precision(sweep: list[dict[str, Any]], floor: float) -> dict[str, Any] | None:
    """The highest hit rate among thresholds whose precision is at least ``floor``."""
    ok = [r for r in sweep if r["precision"] is not None and r["precision"] >= floor]
    return max(ok, key=lambda r: (r["hit_rate"] or 0.0, r["precision"])) if ok else None


def percentiles(seconds: Sequence[float]) -> dict[str, float]:
    ms = np.asarray(seconds, dtype=np.float64) * 1000.0
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
        "max_ms": float(ms.max()),
        "n": len(ms),
    }
