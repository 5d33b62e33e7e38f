"""References to registry entries, and the lookups every registry API shares.

A reference is ``kind:name`` (the newest version), ``kind:name@3`` (a version) or
``kind:name@production`` (an alias); runs and eval runs are ``run:<id>`` and ``eval:<id>``.
Where the kind is known from context it may be left out: ``support-bot@2``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from genai._ids import int_problem
from genai.errors import NotFoundError, ValidationError
from genai.store import schema as t

__all__ = [
    "KINDS",
    "VERSIONED",
    "Ref",
    "add_edge",
    "aliases_of",
    "label",
    "lock_project",
    "next_version",
    "resolve",
]

#: Versioned kinds and their tables.
VERSIONED: dict[str, Any] = {
    "model": t.Model,
    "dataset": t.Dataset,
    "adapter": t.Adapter,
    "prompt": t.PromptVersion,
    "deployment": t.Deployment,
    "suite": t.EvalSuite,
}
#: Every kind a lineage graph holds.
KINDS: dict[str, Any] = {**VERSIONED, "run": t.Run, "eval": t.EvalRun}

_REF = re.compile(
    r"^(?:(?P<kind>[a-z]+):)?(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:@(?P<sel>[A-Za-z0-9._-]+))?$"
)


@dataclass(frozen=True)
class Ref:
    kind: str
    name: str
    selector: str | None = None  # a version number, an alias, or None for the newest

    @classmethod
    def parse(cls, text: str, *, kind: str | None = None) -> Ref:
        match = _REF.match(text.strip()) if isinstance(text, str) else None
        if match is None:
            raise ValidationError(
                f"invalid reference {text!r}: write kind:name, kind:name@VERSION or "
                "kind:name@ALIAS (e.g. adapter:support-bot@production, run:3f2a9c81d0e4)",
                field="ref",
            )
        found = match.group("kind") or kind
        if found is None:
            raise ValidationError(
                f"reference {text!r} does not say its kind: prefix one of "
                f"{', '.join(KINDS)} (e.g. model:{text})",
                field="ref",
            )
        if found not in KINDS:
            raise ValidationError(
                f"unknown kind {found!r} in reference {text!r}: use one of {', '.join(KINDS)}",
                field="ref",
            )
        if kind is not None and found != kind:
            raise ValidationError(f"expected a {kind} reference, got {text!r}", field="ref")
        selector = match.group("sel")
        if found in ("run", "eval") and selector is not None:
            raise ValidationError(f"{found} references take no @version: {text!r}", field="ref")
        return cls(found, match.group("name"), selector)

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}" + (f"@{self.selector}" if self.selector else "")


def lock_project(session: Session, project_id: int) -> None:
    """Serialise version numbering within a project (a row lock on PostgreSQL; SQLite's
    writers are serialised already)."""
    session.execute(select(t.Project.id).where(t.Project.id == project_id).with_for_update())


def next_version(session: Session, table: Any, project_id: int, name: str) -> int:
    current = session.scalar(
        select(func.max(table.version)).where(table.project_id == project_id, table.name == name)
    )
    return int(current or 0) + 1


def resolve(session: Session, project_id: int, ref: Ref) -> Any:
    """The row ``ref`` names inside the project, or :class:`NotFoundError`."""
    table = KINDS[ref.kind]
    if ref.kind in ("run", "eval"):
        row = session.scalars(
            select(table).where(table.project_id == project_id, table.uid == ref.name)
        ).one_or_none()
        if row is None:
            raise NotFoundError(f"{ref.kind} {ref.name!r} not found")
        return row
    query = select(table).where(table.project_id == project_id, table.name == ref.name)
    if ref.selector is None or ref.selector == "latest":
        row = session.scalars(query.order_by(table.version.desc()).limit(1)).one_or_none()
    elif ref.selector.isdigit():  # ASCII (the reference's pattern): a version number
        problem = int_problem(ref.selector, low=0)  # @0 is well-formed, and names nothing
        if problem is not None:
            raise ValidationError(f"the version in {ref} {problem}", field="ref")
        row = session.scalars(query.where(table.version == int(ref.selector))).one_or_none()
    else:
        version = session.scalar(
            select(t.Alias.version).where(
                t.Alias.project_id == project_id,
                t.Alias.kind == ref.kind,
                t.Alias.name == ref.name,
                t.Alias.alias == ref.selector,
            )
        )
        row = (
            session.scalars(query.where(table.version == version)).one_or_none()
            if version is not None
            else None
        )
    if row is None:
        raise NotFoundError(f"{ref} not found")
    return row


def label(kind: str, row: Any) -> str:
    """The reference that names a row."""
    if kind in ("run", "eval"):
        return f"{kind}:{row.uid}"
    return f"{kind}:{row.name}@{row.version}"


def aliases_of(session: Session, project_id: int, kind: str, name: str) -> dict[int, list[str]]:
    rows = session.execute(
        select(t.Alias.version, t.Alias.alias)
        .where(t.Alias.project_id == project_id, t.Alias.kind == kind, t.Alias.name == name)
        .order_by(t.Alias.alias)
    )
    out: dict[int, list[str]] = {}
    for version, alias in rows:
        out.setdefault(version, []).append(alias)
    return out


def add_edge(
    session: Session,
    project_id: int,
    parent: tuple[str, Any],
    child: tuple[str, Any],
    relation: str,
) -> None:
    session.merge(
        t.LineageEdge(
            project_id=project_id,
            parent_kind=parent[0],
            parent_id=parent[1].id,
            child_kind=child[0],
            child_id=child[1].id,
            relation=relation,
        )
    )
