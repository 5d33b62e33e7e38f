"""How the trained verifier is measured: metrics on held-out pairs and the error curve the
bound starts from (fitted on the held-out pairs a cache's verifier would see: cosine >=
``COSINE_FLOOR`` with the bundled embedder, no lexical veto). Used by
``cache/train_verifier.py``.
"""

from __future__ import annotations

import bisect
from typing import Any

from cache._bound import fit_curve
from cache._pair import PairVerifier
from cache._train_data import Pair
from cache._verify import LexicalVerifier

__all__ = ["COSINE_FLOOR", "counts", "measure", "metrics"]

COSINE_FLOOR = 0.5


def measure(
    verifier: PairVerifier, mrpc_dev: list[Pair], sts_dev: list[Pair]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Metrics per held-out set, and the error curve fitted on the pairs a cache's
    verifier would see (cosine >= COSINE_FLOOR, no lexical veto)."""
    from genai.models import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder("all-MiniLM-L6-v2")
    lexical = LexicalVerifier()
    found: dict[str, Any] = {}
    curve_scores: list[float] = []
    curve_wrong: list[bool] = []
    for name, held in (("mrpc_dev", mrpc_dev), ("stsb_dev", sts_dev)):
        scores = [_score_batched(verifier, held[i : i + 64]) for i in range(0, len(held), 64)]
        flat = [s for chunk in scores for s in chunk]
        labels = [p.same for p in held]
        cosine = _cosines(embedder, held)
        reach = [
            i
            for i, p in enumerate(held)
            if cosine[i] >= COSINE_FLOOR and lexical.reject(p.b, p.a) is None
        ]
        found[name] = {
            "all_pairs": metrics(flat, labels),
            "reaching_verifier": {
                "pairs": len(reach),
                **metrics([flat[i] for i in reach], [labels[i] for i in reach]),
            },
        }
        curve_scores += [flat[i] for i in reach]
        curve_wrong += [not labels[i] for i in reach]
    curve = fit_curve(curve_scores, curve_wrong)
    return found, {
        **curve.to_dict(),
        "fitted_on": "mrpc_dev + stsb_dev pairs reaching the "
        f"verifier (cosine >= {COSINE_FLOOR}, no lexical veto)",
        "pairs": len(curve_scores),
    }


def _score_batched(verifier: PairVerifier, pairs: list[Pair]) -> list[float]:
    return verifier.score_pairs([(p.b, p.a) for p in pairs])  # query = the 2nd, cached = 1st


def _cosines(embedder: Any, pairs: list[Pair]) -> list[float]:
    import numpy as np

    a = np.asarray(embedder.embed([p.a for p in pairs]), dtype=np.float32)
    b = np.asarray(embedder.embed([p.b for p in pairs]), dtype=np.float32)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return [float(x) for x in (a * b).sum(1) / norms]


def metrics(scores: list[float], labels: list[bool]) -> dict[str, float]:
    hit = [s >= 0.5 for s in scores]
    tp = sum(h and y for h, y in zip(hit, labels, strict=True))
    fp = sum(h and not y for h, y in zip(hit, labels, strict=True))
    fn = sum(not h and y for h, y in zip(hit, labels, strict=True))
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    both = len(set(labels)) == 2
    return {
        "accuracy": round(sum(h == y for h, y in zip(hit, labels, strict=True)) / len(labels), 4),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(2 * precision * recall / (precision + recall), 4) if tp else 0.0,
        "auc": round(_auc(scores, labels), 4) if both else float("nan"),
        "positives": sum(labels),
        "negatives": len(labels) - sum(labels),
    }


def _auc(scores: list[float], labels: list[bool]) -> float:
    """The probability that a random "same" pair outscores a random "other" one (ties half)."""
    pos = sorted(s for s, y in zip(scores, labels, strict=True) if y)
    neg = sorted(s for s, y in zip(scores, labels, strict=True) if not y)
    wins = sum(
        bisect.bisect_left(neg, s)
        + 0.5 * (bisect.bisect_right(neg, s) - bisect.bisect_left(neg, s))
        for s in pos
    )
    return wins / (len(pos) * len(neg))


def counts(pairs: list[Pair]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for pair in pairs:
        key = f"{pair.source}:{'same' if pair.same else 'other'}"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))
