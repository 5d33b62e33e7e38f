"""What every versioned registry API shares: get, list, and the register transaction."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from genai._names import check_resource_name
from genai.registry._batch import aliases_by_name, check_limit
from genai.registry._refs import VERSIONED, Ref, aliases_of, lock_project, next_version, resolve
from genai.store import schema as t
from genai.tenancy._rbac import Action, Principal

if TYPE_CHECKING:
    from genai._context import Context

__all__ = ["VersionedAPI", "WriteScope"]

InfoT = TypeVar("InfoT")


class WriteScope:
    """An open registry write: the session, the caller and the project, locked."""

    def __init__(self, session: Session, me: Principal, project: t.Project) -> None:
        self.session = session
        self.me = me
        self.project = project

    def resolve(self, text: str, kind: str) -> Any:
        return resolve(self.session, self.project.id, Ref.parse(text, kind=kind))


class VersionedAPI(Generic[InfoT]):
    """Read access to one versioned kind; subclasses add ``register``."""

    kind: str = ""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    @property
    def _table(self) -> Any:
        return VERSIONED[self.kind]

    def get(self, project: str, ref: str) -> InfoT:
        """One version: ``name`` (newest), ``name@3`` or ``name@alias``."""
        with self._ctx.store.session() as s:
            me = self._ctx.me(s)
            proj = self._ctx.project(s, me, project, Action.REGISTRY_READ)
            row = resolve(s, proj.id, Ref.parse(ref, kind=self.kind))
            return self._info(
                s, row, aliases_of(s, proj.id, self.kind, row.name).get(row.version, [])
            )

    def list(
        self,
        project: str,
        *,
        name: str | None = None,
        limit: int | None = None,
        latest: bool = False,
    ) -> builtins.list[InfoT]:
        """Every version, or every version of ``name``: by name, newest version first.

        With ``limit``, only the ``limit`` most recently registered versions, newest first
        (what a page shows; :meth:`count` says how many there are in all); with ``latest``,
        only the newest version of each name. Either way the aliases and what the entries
        point at are read in a few queries, not per entry."""
        check_limit(limit)
        table = self._table
        with self._ctx.store.session() as s:
            me = self._ctx.me(s)
            proj = self._ctx.project(s, me, project, Action.REGISTRY_READ)
            query = select(table).where(table.project_id == proj.id)
            if name is not None:
                query = query.where(table.name == name)
            if latest:
                newest = (
                    select(table.name, func.max(table.version).label("v"))
                    .where(table.project_id == proj.id)
                    .group_by(table.name)
                    .subquery()
                )
                query = query.join(
                    newest, (newest.c.name == table.name) & (newest.c.v == table.version)
                )
            if limit is None:
                query = query.order_by(table.name, table.version.desc())
            else:
                query = query.order_by(table.id.desc()).limit(limit)
            rows = s.scalars(query).all()
            names = {row.name for row in rows} if limit is not None or name is not None else None
            aliases = aliases_by_name(s, proj.id, self.kind, names)
            held = self._prefetch(s, rows)  # kept until the infos are made: the map is weak
            infos = [
                self._info(s, row, aliases.get(row.name, {}).get(row.version, [])) for row in rows
            ]
            del held
            return infos

    def count(self, project: str, *, name: str | None = None) -> int:
        """How many versions there are (of ``name``): beside a ``list(limit=...)``."""
        table = self._table
        with self._ctx.store.session() as s:
            proj = self._ctx.project(s, self._ctx.me(s), project, Action.REGISTRY_READ)
            query = select(func.count()).select_from(table).where(table.project_id == proj.id)
            if name is not None:
                query = query.where(table.name == name)
            return int(s.scalar(query) or 0)

    def _prefetch(self, session: Session, rows: Sequence[Any]) -> object:
        """Load at once the rows that ``_info`` of these rows reads with ``session.get``
        (a base model, a producing run), and return them for the caller to hold."""
        return None

    def _precheck(self, project: str, action: Action = Action.REGISTRY_WRITE) -> None:
        """Authorize before work done outside the write transaction (reading local paths,
        storing artifacts), so a caller without the right learns nothing and stores nothing."""
        with self._ctx.store.session() as s:
            self._ctx.project(s, self._ctx.me(s), project, action)

    @contextmanager
    def _writing(
        self, project: str, action: Action = Action.REGISTRY_WRITE
    ) -> Iterator[WriteScope]:
        with self._ctx.store.session() as s:
            me = self._ctx.me(s)
            proj = self._ctx.project(s, me, project, action)
            lock_project(s, proj.id)
            yield WriteScope(s, me, proj)

    def _add_version(
        self, scope: WriteScope, name: str, build: Callable[[int], Any], **details: Any
    ) -> Any:
        """Insert a new version of ``name`` built by ``build(version)``, with its audit event."""
        check_resource_name(name, kind=f"{self.kind} name")
        version = next_version(scope.session, self._table, scope.project.id, name)
        row = build(version)
        row.project_id = scope.project.id
        row.name = name
        row.version = version
        row.created_by = scope.me.label
        scope.session.add(row)
        scope.session.flush()
        self._ctx.audit(
            scope.session,
            scope.me,
            f"{self.kind}.register",
            project=scope.project,
            resource=f"{self.kind}:{name}@{version}",
            **details,
        )
        return row

    def _info(self, session: Session, row: Any, aliases: builtins.list[str]) -> InfoT:
        raise NotImplementedError
