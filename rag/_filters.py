"""Metadata filters: one small language, evaluated by Chroma (dense) and here (BM25).

``{"source": "faq.md", "page": {"$gte": 2}, "lang": ["en", "de"]}``: every key must hold
(AND); a bare value means equality, a list means any of, an operator map compares
(``$eq $ne $gt $gte $lt $lte $in $nin``). Keys are the chunk metadata fields ``source``,
``title``, ``page``, ``record``, ``heading`` (the heading path joined by `` > ``) and any
``extra`` field a loader set. Both evaluators read the same flattened metadata, so dense,
sparse and hybrid retrieval filter identically.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from genai.errors import ValidationError
from rag._types import FilterValue, Scalar

__all__ = ["OPERATORS", "check_filters", "matches", "to_chroma_where"]

_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "$gt": lambda a, b: a > b,
    "$gte": lambda a, b: a >= b,
    "$lt": lambda a, b: a < b,
    "$lte": lambda a, b: a <= b,
}
OPERATORS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin")
#: Metadata keys the platform stores for its own bookkeeping, not filterable.
_RESERVED = ("doc_key", "doc_hash", "text_hash", "chunk_index", "start", "end", "heading_json")


def check_filters(filters: Mapping[str, FilterValue] | None) -> list[tuple[str, str, Any]]:
    """The filters as ``(key, operator, operand)`` triples; raises on anything malformed."""
    if not filters:
        return []
    out: list[tuple[str, str, Any]] = []
    for key, value in filters.items():
        if not isinstance(key, str) or not key or key.startswith("$"):
            raise ValidationError(f"filter key {key!r} must be a metadata field name")
        if key in _RESERVED:
            raise ValidationError(f"{key!r} is internal metadata and cannot be filtered on")
        if isinstance(value, Mapping):
            if not value:
                raise ValidationError(f"filter {key!r} has an empty operator map")
            for op, operand in value.items():
                out.append((key, *_check_op(key, op, operand)))
        elif isinstance(value, list):
            out.append((key, *_check_op(key, "$in", value)))
        else:
            out.append((key, *_check_op(key, "$eq", value)))
    return out


def _check_op(key: str, op: str, operand: Any) -> tuple[str, Any]:
    if op not in OPERATORS:
        raise ValidationError(
            f"unknown filter operator {op!r} on {key!r}: use one of {', '.join(OPERATORS)}"
        )
    if op in ("$in", "$nin"):
        if not isinstance(operand, list) or not operand:
            raise ValidationError(f"{op} on {key!r} takes a non-empty list of values")
        for item in operand:
            _scalar(key, item)
        return op, list(operand)
    _scalar(key, operand)
    if op in _ORDER and isinstance(operand, (str, bool)):
        raise ValidationError(f"{op} on {key!r} compares numbers, not {operand!r}")
    return op, operand


def _scalar(key: str, value: Any) -> None:
    if not isinstance(value, Scalar):
        raise ValidationError(
            f"filter value {value!r} of {key!r} must be a string, number or boolean"
        )


def to_chroma_where(filters: Mapping[str, FilterValue] | None) -> dict[str, Any] | None:
    """Chroma's ``where`` for the same filters (``$and`` of one clause per condition)."""
    clauses = [{key: {op: operand}} for key, op, operand in check_filters(filters)]
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def matches(metadata: Mapping[str, Any], conditions: list[tuple[str, str, Any]]) -> bool:
    """Whether flattened chunk ``metadata`` satisfies every condition (Chroma's semantics:
    a missing key fails every operator except ``$ne`` and ``$nin``)."""
    for key, op, operand in conditions:
        if key not in metadata:
            if op in ("$ne", "$nin"):
                continue
            return False
        value = metadata[key]
        if op == "$eq":
            ok = value == operand
        elif op == "$ne":
            ok = value != operand
        elif op == "$in":
            ok = value in operand
        elif op == "$nin":
            ok = value not in operand
        else:
            ok = isinstance(value, (int, float)) and _ORDER[op](value, operand)
        if not ok:
            return False
    return True
