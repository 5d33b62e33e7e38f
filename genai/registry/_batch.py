"""What one entry's info needs beyond its own row (its aliases, its lineage inputs, its
latest metrics, the rows it points at), read for a whole list of entries in one query each.

Why: the list calls used to run one to three queries per entry (an N+1). Each query costs
~0.2-0.3 ms of SQLAlchemy and SQLite work, so listing 333 runs took ~75 ms and the Hub's
registry page ~160 ms before anything was rendered. Here a list of N entries costs a
constant number of queries (ids are sent in chunks, well under every database's limit on
bound parameters).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from genai.errors import ValidationError
from genai.registry._refs import KINDS
from genai.store import schema as t

__all__ = ["aliases_by_name", "check_limit", "inputs_of", "latest_metrics", "load_by_id"]

#: Ids per ``IN (...)``: SQLite allows 32,766 bound parameters, PostgreSQL 65,535.
_CHUNK = 500


def _chunks(ids: Collection[int]) -> Iterator[list[int]]:
    unique = sorted(set(ids))
    for start in range(0, len(unique), _CHUNK):
        yield unique[start : start + _CHUNK]


def check_limit(limit: int | None) -> None:
    """A list call's ``limit``: None (everything) or a positive whole number."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValidationError(
            f"limit must be a positive whole number (or left out for all), not {limit!r}",
            field="limit",
        )


def aliases_by_name(
    session: Session, project_id: int, kind: str, names: Collection[str] | None = None
) -> dict[str, dict[int, list[str]]]:
    """``{name: {version: [alias, ...]}}`` for every name of ``kind`` in the project, or
    only ``names``; aliases in alphabetical order, as :func:`~genai.registry._refs.aliases_of`."""
    query = (
        select(t.Alias.name, t.Alias.version, t.Alias.alias)
        .where(t.Alias.project_id == project_id, t.Alias.kind == kind)
        .order_by(t.Alias.alias)
    )
    if names is not None:
        if not names:
            return {}
        if len(names) <= _CHUNK:
            query = query.where(t.Alias.name.in_(sorted(set(names))))
    out: dict[str, dict[int, list[str]]] = {}
    for name, version, alias in session.execute(query):
        out.setdefault(name, {}).setdefault(version, []).append(alias)
    return out


def load_by_id(session: Session, table: Any, ids: Collection[int | None]) -> dict[int, Any]:
    """The rows of ``table`` with these ids, loaded at once. The caller keeps the answer
    while it works: the session's identity map holds rows weakly, and ``session.get`` of
    one of these ids then needs no query."""
    wanted = [i for i in ids if i is not None]
    out: dict[int, Any] = {}
    for chunk in _chunks(wanted):
        for row in session.scalars(select(table).where(table.id.in_(chunk))):
            out[row.id] = row
    return out


def inputs_of(session: Session, kind: str, ids: Collection[int]) -> dict[int, list[str]]:
    """The lineage parents of each entry of ``kind`` (by row id) as sorted references
    (``dataset:train@2``, ``run:ID``), two queries per kind of parent at most."""
    edges: list[tuple[int, str, int]] = []
    e = t.LineageEdge
    for chunk in _chunks(ids):
        rows = session.execute(
            select(e.child_id, e.parent_kind, e.parent_id).where(
                e.child_kind == kind, e.child_id.in_(chunk)
            )
        )
        edges.extend((child, parent_kind, parent) for child, parent_kind, parent in rows)
    by_kind: dict[str, set[int]] = {}
    for _, parent_kind, parent_id in edges:
        by_kind.setdefault(parent_kind, set()).add(parent_id)
    names: dict[tuple[str, int], str] = {}
    for parent_kind, parent_ids in by_kind.items():
        table = KINDS.get(parent_kind)
        if table is None:
            continue
        uid = parent_kind in ("run", "eval")
        columns = (table.id, table.uid) if uid else (table.id, table.name, table.version)
        for chunk in _chunks(parent_ids):
            for found in session.execute(select(*columns).where(table.id.in_(chunk))):
                ref = found[1] if uid else f"{found[1]}@{found[2]}"
                names[(parent_kind, found[0])] = f"{parent_kind}:{ref}"
    out: dict[int, list[str]] = {i: [] for i in ids}
    for child_id, parent_kind, parent_id in edges:
        ref = names.get((parent_kind, parent_id))
        if ref is not None:  # a parent deleted since: left out, as before
            out.setdefault(child_id, []).append(ref)
    return {i: sorted(refs) for i, refs in out.items()}


def latest_metrics(session: Session, run_ids: Sequence[int]) -> dict[int, dict[str, float]]:
    """Each run's newest value of every metric (the value at its highest step), keys in the
    order they were first logged (by first step, then name)."""
    m = t.RunMetric
    out: dict[int, dict[str, float]] = {i: {} for i in run_ids}
    for chunk in _chunks(run_ids):
        steps = (
            select(
                m.run_id,
                m.key,
                func.max(m.step).label("last"),
                func.min(m.step).label("first"),
            )
            .where(m.run_id.in_(chunk))
            .group_by(m.run_id, m.key)
            .subquery()
        )
        query = (
            select(m.run_id, m.key, m.value)
            .join(
                steps,
                and_(m.run_id == steps.c.run_id, m.key == steps.c.key, m.step == steps.c.last),
            )
            .order_by(m.run_id, steps.c.first, m.key)
        )
        for run_id, key, value in session.execute(query):
            out.setdefault(run_id, {})[key] = value
    return out
