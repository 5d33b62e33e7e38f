"""The semantic tier's choice among the nearest cached questions (``SemanticCache.lookup``).

The ``top_k`` nearest cached questions of the scope come from its vector collection, or,
for a small scope, from its rows (:func:`scan`); :func:`choose` ranks them (cosine plus
``lexical_weight`` × the share of words in common), takes the best one the lexical
``verifier`` lets through, and answers only where it leads every other candidate by
``margin``; :func:`judged` then asks the pair verifier through the project's error bound.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

from cache._entries import Entry, EntryStore
from cache._judge import PairJudge
from cache._keys import RequestKey
from cache._verify import Verifier
from genai.errors import ValidationError

if TYPE_CHECKING:
    from cache._cache import SemanticCache

__all__ = [
    "CacheHit",
    "as_vector",
    "check_settings",
    "check_threshold",
    "choose",
    "exact",
    "from_bytes",
    "judged",
    "scan",
    "semantic",
    "word_set",
]

_WORDS = re.compile(r"\w+")
#: A collection prefix that no name mangling changes (the project id follows it).
_PREFIX = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_-]{0,63}")


@lru_cache(maxsize=1024)
def word_set(text: str) -> frozenset[str]:
    """A question's words, for ranking near-duplicates (kept for the 1024 texts seen last,
    ~1.5 KiB each: a cached question is ranked again on every lookup near it)."""
    return frozenset(_WORDS.findall(text))


@dataclass(frozen=True)
class CacheHit:
    """A cached answer for a request."""

    answer: Any  # what was stored: a str, or a whole OpenAI response body
    entry_id: str
    tier: Literal["exact", "semantic"]
    score: float  # 1.0 for the exact tier, the cosine similarity for the semantic one
    tokens: int = 0  # what the original answer cost, now saved
    cost_usd: float = 0.0
    verifier_score: float | None = None  # the pair verifier's, when it judged the hit
    estimated_error: float | None = None  # the bound's P(wrong) for it, then


def exact(cache: SemanticCache, project: int, key: RequestKey, now: float) -> CacheHit | None:
    """The exact tier: the entry of the same normalised request (an expired one is evicted)."""
    entry = cache._entries.exact(project, key.exact)
    if entry is None:
        return None
    if entry.expired(now):
        cache.evict(entry.id, project_id=project)
        return None
    return CacheHit(entry.answer, entry.id, "exact", 1.0, entry.tokens, entry.cost_usd)


def semantic(
    cache: SemanticCache, project: int, key: RequestKey, vector: Any, now: float, threshold: float
) -> tuple[CacheHit, str] | None:
    """The semantic tier: the rules' choice among the scope's nearest cached questions."""
    assert key.question is not None
    query = as_vector(vector)
    matches = cache.vectors.query(
        cache.collection(project, key.scope), query, k=cache.top_k, metadata=False
    )
    entries = cache._entries
    if matches:
        if matches[0].score < threshold:
            return None
        found = entries.fetch(project, [m.id for m in matches])
        scored = [(m.score, found[m.id]) for m in matches if m.id in found]
        missing = [m.id for m in matches if m.id not in found]
        if missing:  # rows another process deleted: their vectors go too
            cache._forget_vectors(project, [(i, key.scope) for i in missing])
    else:
        limit = 4 * cache.index_after
        scored = scan(entries, project, key.scope, query, limit=limit, top_k=cache.top_k)
    live = [(score, entry) for score, entry in scored if not entry.expired(now)]
    expired = [entry.id for _, entry in scored if entry.expired(now)]
    if expired:
        cache._forget_vectors(project, entries.delete(project, expired))
    return choose(
        key.question,
        live,
        threshold,
        verifier=cache.verifier,
        lexical_weight=cache.lexical_weight,
        margin=cache.margin,
    )


def scan(
    entries: EntryStore, project: int, scope: str, query: Any, *, limit: int, top_k: int
) -> list[tuple[float, Entry]]:
    """The ``top_k`` most similar entries of a small scope, from its (``limit``) rows."""
    import numpy as np

    rows = [e for e in entries.scope_rows(project, scope, limit) if e.vector]
    rows = [e for e in rows if len(e.vector or b"") == query.nbytes]
    if not rows:
        return []
    matrix = np.frombuffer(b"".join(e.vector or b"" for e in rows), dtype=np.float32)
    scores = matrix.reshape(len(rows), -1) @ query
    best = np.argsort(-scores)[:top_k]
    return [(float(scores[i]), rows[i]) for i in best]


def choose(
    question: str,
    candidates: Sequence[tuple[float, Entry]],
    threshold: float,
    *,
    verifier: Verifier | None,
    lexical_weight: float,
    margin: float,
) -> tuple[CacheHit, str] | None:
    """The hit the rules choose among ``candidates`` (cosine, entry), with its cached
    question; None where none passes or two fit about equally well."""
    words = word_set(question)
    ranked = []
    for score, entry in candidates:
        if entry.question is None:
            continue
        overlap = 0.0
        if lexical_weight:
            theirs = word_set(entry.question)
            overlap = len(words & theirs) / max(1, len(words | theirs))
        ranked.append((score + lexical_weight * overlap, score, entry))
    ranked.sort(key=lambda r: -r[0])
    best = None
    for rank, score, entry in ranked:
        if score < threshold:
            continue
        assert entry.question is not None
        if verifier is None or verifier.reject(question, entry.question) is None:
            best = (rank, score, entry)
            break
    if best is None:
        return None
    rivals = [r[0] for r in ranked if r[2].id != best[2].id]
    if rivals and best[0] - max(rivals) < margin:
        return None  # two cached questions fit about equally well: not sure which
    entry = best[2]
    hit = CacheHit(entry.answer, entry.id, "semantic", best[1], entry.tokens, entry.cost_usd)
    return hit, entry.question or ""


def judged(
    choice: tuple[CacheHit, str],
    judge: PairJudge,
    project: int,
    deployment: str,
    question: str,
    max_error: float | None,
) -> tuple[CacheHit, str] | None:
    """The rules' choice, if the pair verifier (through the bound) lets it stand."""
    hit, cached = choice
    verdict = judge.judge(project, deployment, question, cached, max_error=max_error)
    if not verdict.accept:
        return None
    judged = replace(hit, verifier_score=verdict.score, estimated_error=verdict.estimated_error)
    return judged, cached


def check_settings(
    *,
    threshold: float,
    collection_prefix: str,
    margin: float,
    top_k: int,
    index_after: int,
    ttl_s: float | None,
    max_entries: int | None,
) -> None:
    """A ValidationError naming the first of a cache's settings that is out of range."""
    check_threshold(threshold)
    if not _PREFIX.fullmatch(collection_prefix):
        raise ValidationError(
            f"collection_prefix {collection_prefix!r} is not valid: use 1 to 64 letters, "
            "digits, '_' or '-', starting with a letter or digit (e.g. 'genai-cache')",
            field="collection_prefix",
        )
    if margin < 0 or top_k < 1 or index_after < 1:
        raise ValidationError(
            "margin must be >= 0, top_k and index_after >= 1 (got "
            f"margin={margin}, top_k={top_k}, index_after={index_after})",
            field="margin",
        )
    if ttl_s is not None and ttl_s <= 0:
        raise ValidationError(f"ttl_s must be positive or None, not {ttl_s}", field="ttl_s")
    if max_entries is not None and max_entries < 1:
        raise ValidationError(
            f"max_entries must be at least 1 or None, not {max_entries}", field="max_entries"
        )


def check_threshold(threshold: float) -> None:
    if not 0 < threshold <= 1:
        raise ValidationError(
            f"threshold must be a cosine similarity in (0, 1], not {threshold}: "
            "`genai cache calibrate` picks one from labelled pairs",
            field="threshold",
        )


def as_vector(vector: Any) -> Any:
    import numpy as np

    row = np.asarray(vector, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(row))
    return row / norm if norm else row


def from_bytes(raw: bytes) -> Any:
    import numpy as np

    return np.frombuffer(raw, dtype=np.float32)
