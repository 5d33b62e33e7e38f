"""Deleting a project's entries on request (``SemanticCache.invalidate``), and what
``/v1/feedback`` calling an answer wrong does (``SemanticCache.feedback``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from genai.errors import ValidationError

if TYPE_CHECKING:
    from cache._cache import SemanticCache

__all__ = ["feedback", "invalidate"]


def invalidate(cache: SemanticCache, project_id: int, filters: Mapping[str, str]) -> int:
    """Delete the project's entries whose partition fields equal ``filters`` (all of them
    when empty) and their collections; how many."""
    if filters and "deployment" not in filters:
        raise ValidationError(
            "name the deployment whose adapter, prompt or knowledge-base version to invalidate",
            field="deployment",
        )
    entries = cache._entries
    gone = entries.delete_where(project_id, filters)
    # a scope lies inside one partition: its entries all went, so its collection goes
    for scope in {scope for _, scope in gone}:
        cache._scopes.drop(project_id, scope)
    if gone:
        entries.record(project_id, filters.get("deployment", ""), {"evictions": len(gone)})
    return len(gone)


def feedback(cache: SemanticCache, project_id: int, request_id: str) -> int:
    """The answer to ``request_id`` was wrong: evict the entries that gave it (or that it
    created), count false hits, and label the hits the pair verifier judged (once, in
    whichever process claims them first). How many entries were evicted."""
    entries = cache._entries
    found = entries.for_request(project_id, request_id)
    gone = entries.delete(project_id, [e.id for e in found])
    cache._forget_vectors(project_id, gone)
    for entry in found:
        entries.record(project_id, entry.deployment, {"false_hits": 1, "evictions": 1})
    if cache.judge is not None:
        for deployment, score in entries.claim_judged(project_id, request_id):
            cache.judge.bound.wrong(project_id, score, deployment=deployment)
    if found:
        entries.flush()  # rare, and what `genai cache stats` is read for
    return len(gone)
