"""Aliases that move between versions (with their history), and the lineage graph."""

from __future__ import annotations

import builtins
from collections import deque
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from genai._names import check_resource_name
from genai.errors import NotFoundError, ValidationError
from genai.registry._refs import KINDS, VERSIONED, Ref, label, resolve
from genai.registry._types import AliasChange, LineageEdgeInfo, LineageGraph
from genai.store import schema as t
from genai.tenancy._rbac import Action, Principal, Resource, authorize

if TYPE_CHECKING:
    from genai._context import Context

__all__ = ["Aliases", "Lineage"]


class Aliases:
    """Named pointers (``production``, ``staging``, any name) to versions of an entry.

    Moving a protected alias (``GENAI_PROTECTED_ALIASES``, default ``production``) needs
    the maintainer role; every move is kept in the alias history and the audit log, with
    its evidence when it has one (the eval run that gated it).
    """

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def set(
        self, project: str, ref: str, alias: str, *, evidence: str | None = None
    ) -> AliasChange:
        """Point ``alias`` at the version ``ref`` names (e.g. ``adapter:support@3``).

        ``evidence`` is the eval run the move rests on (``eval:ID``), an eval run of the
        same project: kept on the move's history entry and audit event. One the project
        lacks is not found, whether or not another project has it."""
        target = Ref.parse(ref)
        self._check(target, alias)
        with self._ctx.store.session() as s:
            me = self._ctx.me(s)
            proj = self._ctx.project(s, me, project, self._action(alias))
            row = resolve(s, proj.id, target)
            proof = _evidence(s, proj.id, evidence)
            current = s.get(t.Alias, (proj.id, target.kind, row.name, alias))
            old = current.version if current else None
            if old == row.version:
                return self._change(target.kind, row.name, alias, old, old, me.label)
            if current is None:
                s.add(
                    t.Alias(
                        project_id=proj.id,
                        kind=target.kind,
                        name=row.name,
                        alias=alias,
                        version=row.version,
                        updated_by=me.label,
                    )
                )
            else:
                current.version, current.updated_by, current.updated_at = (
                    row.version,
                    me.label,
                    t.utcnow(),
                )
            return self._record(
                s, proj, target.kind, row.name, alias, old, row.version, me, evidence=proof
            )

    def delete(self, project: str, ref: str, alias: str) -> AliasChange:
        target = Ref.parse(ref)
        self._check(target, alias)
        with self._ctx.store.session() as s:
            me = self._ctx.me(s)
            proj = self._ctx.project(s, me, project, self._action(alias))
            current = s.get(t.Alias, (proj.id, target.kind, target.name, alias))
            if current is None:
                raise NotFoundError(f"{target.kind}:{target.name} has no alias {alias!r}")
            old = current.version
            s.delete(current)
            return self._record(s, proj, target.kind, target.name, alias, old, None, me)

    def history(
        self, project: str, ref: str, *, alias: str | None = None
    ) -> builtins.list[AliasChange]:
        """Every move of the entry's aliases (or of one alias), oldest first."""
        target = Ref.parse(ref)
        with self._ctx.store.session() as s:
            me = self._ctx.me(s)
            proj = self._ctx.project(s, me, project, Action.REGISTRY_READ)
            query = select(t.AliasEvent).where(
                t.AliasEvent.project_id == proj.id,
                t.AliasEvent.kind == target.kind,
                t.AliasEvent.name == target.name,
            )
            if alias is not None:
                query = query.where(t.AliasEvent.alias == alias)
            return [
                AliasChange(
                    kind=e.kind,
                    name=e.name,
                    alias=e.alias,
                    from_version=e.from_version,
                    to_version=e.to_version,
                    ts=e.ts,
                    actor=e.actor,
                    evidence=e.evidence,
                )
                for e in s.scalars(query.order_by(t.AliasEvent.id))
            ]

    def _action(self, alias: str) -> Action:
        if alias in self._ctx.settings.protected_aliases:
            return Action.ALIAS_SET_PROTECTED
        return Action.ALIAS_SET

    @staticmethod
    def _check(target: Ref, alias: str) -> None:
        if target.kind not in VERSIONED:
            raise ValidationError(f"{target.kind} entries have no versions to alias", field="ref")
        check_resource_name(alias, kind="alias")
        if alias.isdigit() or alias == "latest":
            raise ValidationError(
                f"alias {alias!r} would read as a version: aliases are names, not numbers or "
                "'latest'",
                field="alias",
            )

    def _record(
        self,
        s: Session,
        proj: t.Project,
        kind: str,
        name: str,
        alias: str,
        old: int | None,
        new: int | None,
        me: Principal,
        *,
        evidence: str | None = None,
    ) -> AliasChange:
        s.add(
            t.AliasEvent(
                project_id=proj.id,
                kind=kind,
                name=name,
                alias=alias,
                from_version=old,
                to_version=new,
                actor=me.label,
                evidence=evidence,
            )
        )
        self._ctx.audit(
            s,
            me,
            "alias.set" if new is not None else "alias.delete",
            project=proj,
            resource=f"{kind}:{name}@{alias}",
            old=old,
            new=new,
            **({"evidence": evidence} if evidence is not None else {}),
        )
        return self._change(kind, name, alias, old, new, me.label, evidence=evidence)

    @staticmethod
    def _change(
        kind: str,
        name: str,
        alias: str,
        old: int | None,
        new: int | None,
        actor: str,
        *,
        evidence: str | None = None,
    ) -> AliasChange:
        return AliasChange(
            kind=kind,
            name=name,
            alias=alias,
            from_version=old,
            to_version=new,
            ts=t.utcnow(),
            actor=actor,
            evidence=evidence,
        )


def _evidence(s: Session, project_id: int, evidence: str | None) -> str | None:
    """``evidence`` as the reference of an eval run of the project (``eval:ID``)."""
    if evidence is None:
        return None
    row = resolve(s, project_id, Ref.parse(evidence, kind="eval"))
    return label("eval", row)


class Lineage:
    """The one lineage graph: dataset → run → adapter → deployment → eval run, and
    prompt version → eval run, within one project."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def __call__(self, project: str, ref: str, *, depth: int | None = None) -> LineageGraph:
        """Ancestors and descendants of ``ref`` (all of them, or up to ``depth`` hops)."""
        target = Ref.parse(ref)
        with self._ctx.store.session() as s:
            me = self._ctx.me(s)
            proj = self._ctx.project(s, me, project, Action.REGISTRY_READ)
            authorize(me, Action.REGISTRY_READ, Resource(target.kind, target.name, proj.id))
            root = resolve(s, proj.id, target)
            start = (target.kind, root.id)
            up, up_edges = _walk(s, proj.id, start, upward=True, depth=depth)
            down, down_edges = _walk(s, proj.id, start, upward=False, depth=depth)
            labels = _labels(
                s,
                {
                    start,
                    *up,
                    *down,
                    *(e[0] for e in up_edges + down_edges),
                    *(e[1] for e in up_edges + down_edges),
                },
            )
            edges = sorted(
                {
                    LineageEdgeInfo(parent=labels[p], child=labels[c], relation=r)
                    for p, c, r in up_edges + down_edges
                },
                key=lambda e: (e.parent, e.child),
            )
            return LineageGraph(
                root=labels[start],
                ancestors=[labels[n] for n in up],
                descendants=[labels[n] for n in down],
                edges=edges,
            )


Node = tuple[str, int]


def _walk(
    s: Session, project_id: int, start: Node, *, upward: bool, depth: int | None
) -> tuple[list[Node], list[tuple[Node, Node, str]]]:
    seen: dict[Node, None] = {}
    edges: list[tuple[Node, Node, str]] = []
    queue: deque[tuple[Node, int]] = deque([(start, 0)])
    E = t.LineageEdge
    while queue:
        node, hops = queue.popleft()
        if depth is not None and hops >= depth:
            continue
        if upward:
            query = select(E).where(
                E.project_id == project_id, E.child_kind == node[0], E.child_id == node[1]
            )
        else:
            query = select(E).where(
                E.project_id == project_id, E.parent_kind == node[0], E.parent_id == node[1]
            )
        for edge in s.scalars(query):
            parent, child = (edge.parent_kind, edge.parent_id), (edge.child_kind, edge.child_id)
            edges.append((parent, child, edge.relation))
            nxt = parent if upward else child
            if nxt not in seen and nxt != start:
                seen[nxt] = None
                queue.append((nxt, hops + 1))
    return list(seen), edges


def _labels(s: Session, nodes: set[Node]) -> dict[Node, str]:
    out = {}
    for kind, ident in nodes:
        row = s.get(KINDS[kind], ident)
        out[(kind, ident)] = label(kind, row) if row is not None else f"{kind}:#{ident} (deleted)"
    return out
