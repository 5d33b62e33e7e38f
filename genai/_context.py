"""What every service of a client shares: settings, store, the caller's identity, audit."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from genai.errors import AuthenticationError, GenAIError, NotFoundError
from genai.settings import Settings
from genai.store import Store
from genai.store import schema as t
from genai.tenancy._keys import verify_key
from genai.tenancy._rbac import Action, Principal, Resource, Role, authorize

if TYPE_CHECKING:
    from genai.registry._artifacts import ArtifactStore
    from genai.tenancy._counters import Counters

__all__ = ["Context"]


class Context:
    """The identity a client acts as, and the resources its services share.

    The caller is resolved again inside every transaction (:meth:`me`), so a membership
    removed or a key revoked a moment ago takes effect on the next call.
    """

    def __init__(
        self, settings: Settings, store: Store, *, user: str | None, api_key: str | None
    ) -> None:
        self.settings = settings
        self.store = store
        self._user = user
        self._api_key = api_key

    @cached_property
    def artifacts(self) -> ArtifactStore:
        from genai.registry._artifacts import ArtifactStore

        return ArtifactStore(self.settings.resolved_artifact_root)

    @cached_property
    def counters(self) -> Counters:
        from genai.tenancy._counters import RedisCounters, SqlCounters

        if self.settings.redis_url:
            return RedisCounters(self.settings.redis_url, prefix=self.settings.redis_prefix)
        return SqlCounters(self.store)

    # ---------------------------------------------------------------- identity

    def me(self, session: Session) -> Principal:
        if self._api_key is not None:
            return verify_key(session, self._api_key, now=t.utcnow())
        assert self._user is not None
        row = session.scalars(
            select(t.Principal).where(t.Principal.kind == "user", t.Principal.name == self._user)
        ).one_or_none()
        if row is None:
            raise AuthenticationError(
                f"unknown user {self._user!r}: a project owner adds users with "
                "`genai project member add`, and `genai init` registers the first one "
                "(act as another user with --as or GENAI_USER)"
            )
        grants = {
            m.project_id: Role(m.role)
            for m in session.scalars(
                select(t.Membership).where(t.Membership.principal_id == row.id)
            )
        }
        return Principal(
            id=row.id,
            name=row.name,
            kind=row.kind,
            is_admin=row.is_admin,
            can_create_projects=row.is_admin or self.settings.self_service_projects,
            grants=grants,
        )

    def project(self, session: Session, me: Principal, name: str, action: Action) -> t.Project:
        """The project called ``name``, once ``me`` may do ``action`` in it."""
        row = session.scalars(select(t.Project).where(t.Project.name == name)).one_or_none()
        if row is None:
            raise NotFoundError(f"project {name!r} not found")
        authorize(me, action, Resource("project", name, row.id))
        return row

    def visible_projects(self, session: Session, me: Principal, action: Action) -> list[t.Project]:
        """The projects where ``me`` may do ``action``, by name."""
        rows = session.scalars(select(t.Project).order_by(t.Project.name)).all()
        allowed = []
        for row in rows:
            try:
                authorize(me, action, Resource("project", row.name, row.id))
            except GenAIError:  # not a member, or a member without this permission
                continue
            allowed.append(row)
        return allowed

    # ---------------------------------------------------------------- audit

    def audit(
        self,
        session: Session,
        me: Principal,
        action: str,
        *,
        project: t.Project | None = None,
        resource: str = "",
        **details: Any,
    ) -> None:
        """Record a mutating action in the same transaction as the change itself."""
        session.add(
            t.AuditEvent(
                actor=me.label,
                project_id=project.id if project else None,
                project=project.name if project else "",
                action=action,
                resource=resource,
                details=details,
            )
        )
