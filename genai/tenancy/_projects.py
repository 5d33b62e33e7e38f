"""Projects, their members (users and service accounts), and platform users."""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from genai._names import check_project_name, check_resource_name, check_user_name
from genai.errors import ConflictError, Forbidden, NotFoundError
from genai.store import schema as t
from genai.tenancy._rbac import Action, Principal, Resource, Role, authorize, parse_role
from genai.tenancy._types import MemberInfo, ProjectInfo, UserInfo

if TYPE_CHECKING:
    from genai._context import Context

__all__ = ["Projects", "Users"]


class Projects:
    """Create, list, inspect and delete AI Projects, and manage who belongs to them."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def create(self, name: str, *, description: str = "") -> ProjectInfo:
        """Create a project; the caller becomes its owner."""
        check_project_name(name)
        with self._ctx.store.session() as s:
            me = self._ctx.me(s)
            authorize(me, Action.PROJECT_CREATE, Resource("project", name, None))
            if me.key_id is not None:
                raise Forbidden("API keys act inside one project and cannot create projects")
            if s.scalar(select(t.Project.id).where(t.Project.name == name)) is not None:
                raise ConflictError(
                    f"project {name!r} already exists: choose another name"
                    + ("" if me.is_admin else " (names are unique across the platform)")
                )
            row = t.Project(name=name, description=description, created_by=me.name)
            s.add(row)
            s.flush()
            s.add(t.Membership(project_id=row.id, principal_id=me.id, role=Role.OWNER.value))
            s.add(t.Quota(project_id=row.id))
            self._ctx.audit(s, me, "project.create", project=row, resource=f"project:{name}")
            return self._info(s, row, Role.OWNER)

    def list(self) -> builtins.list[ProjectInfo]:
        with self._ctx.store.session() as s:
            me = self._ctx.me(s)
            rows = self._ctx.visible_projects(s, me, Action.PROJECT_READ)
            return [self._info(s, row, me.role_in(row.id)) for row in rows]

    def get(self, name: str) -> ProjectInfo:
        with self._ctx.store.session() as s:
            me = self._ctx.me(s)
            row = self._ctx.project(s, me, name, Action.PROJECT_READ)
            return self._info(s, row, me.role_in(row.id))

    def delete(self, name: str) -> None:
        """Delete a project and everything that belongs to it, in one transaction."""
        with self._ctx.store.session() as s:
            me = self._ctx.me(s)
            row = self._ctx.project(s, me, name, Action.PROJECT_DELETE)
            counts = {
                "keys": s.scalar(select(func.count()).where(t.ApiKey.project_id == row.id)),
                "members": s.scalar(select(func.count()).where(t.Membership.project_id == row.id)),
            }
            self._ctx.audit(
                s, me, "project.delete", project=row, resource=f"project:{name}", **counts
            )
            s.delete(row)

    # ------------------------------------------------------------ members

    def add_member(
        self, project: str, name: str, *, role: str | Role, service: bool = False
    ) -> MemberInfo:
        """Give ``name`` a role in ``project`` (or change the role it has).

        A user that the platform does not know yet is registered. With ``service=True`` the
        member is a service account of this project, created here. No one grants a role
        above their own, and only owners appoint owners.
        """
        new_role = parse_role(role)
        kind = "service" if service else "user"
        if service:
            check_resource_name(name, kind="service account")
        else:
            check_user_name(name)
        with self._ctx.store.session() as s:
            me = self._ctx.me(s)
            proj = self._ctx.project(s, me, project, Action.MEMBER_MANAGE)
            _check_grantable(me, proj, new_role)
            principal = _find_principal(s, proj.id, name, kind)
            if principal is None:
                principal = t.Principal(
                    kind=kind, name=name, project_id=proj.id if service else None
                )
                s.add(principal)
                s.flush()
            member = s.get(t.Membership, (proj.id, principal.id))
            old_role = Role(member.role) if member else None
            if old_role == new_role:
                assert member is not None
                return _member_info(principal, member)
            if old_role is not None:
                _check_grantable(me, proj, old_role)
                if old_role is Role.OWNER:
                    _keep_an_owner(s, proj)
                assert member is not None
                member.role = new_role.value
            else:
                member = t.Membership(
                    project_id=proj.id, principal_id=principal.id, role=new_role.value
                )
                s.add(member)
            self._ctx.audit(
                s,
                me,
                "member.set-role",
                project=proj,
                resource=f"{kind}:{name}",
                old=old_role.value if old_role else None,
                new=new_role.value,
            )
            s.flush()
            return _member_info(principal, member)

    def remove_member(self, project: str, name: str, *, service: bool = False) -> None:
        """Remove a member; their keys for this project are revoked in the same step."""
        kind = "service" if service else "user"
        with self._ctx.store.session() as s:
            me = self._ctx.me(s)
            proj = self._ctx.project(s, me, project, Action.MEMBER_MANAGE)
            principal = _find_principal(s, proj.id, name, kind)
            member = s.get(t.Membership, (proj.id, principal.id)) if principal else None
            if principal is None or member is None:
                raise NotFoundError(f"{kind} {name!r} is not a member of project {project!r}")
            _check_grantable(me, proj, Role(member.role))
            if member.role == Role.OWNER.value:
                _keep_an_owner(s, proj)
            revoked = s.execute(  # type: ignore[attr-defined]
                update(t.ApiKey)
                .where(
                    t.ApiKey.project_id == proj.id,
                    t.ApiKey.principal_id == principal.id,
                    t.ApiKey.revoked_at.is_(None),
                )
                .values(revoked_at=t.utcnow())
            ).rowcount
            s.delete(member)
            if service:
                s.delete(principal)
            self._ctx.audit(
                s,
                me,
                "member.remove",
                project=proj,
                resource=f"{kind}:{name}",
                keys_revoked=revoked,
            )

    def members(self, project: str) -> builtins.list[MemberInfo]:
        with self._ctx.store.session() as s:
            me = self._ctx.me(s)
            proj = self._ctx.project(s, me, project, Action.MEMBER_READ)
            rows = s.execute(
                select(t.Principal, t.Membership)
                .join(t.Membership, t.Membership.principal_id == t.Principal.id)
                .where(t.Membership.project_id == proj.id)
                .order_by(t.Principal.kind, t.Principal.name)
            ).all()
            return [_member_info(p, m) for p, m in rows]

    def set_option(self, project: str, key: str, value: bool | int | float | str) -> None:
        """Set a project option (e.g. ``prompt_logging``); owners only."""
        check_resource_name(key, kind="option")
        with self._ctx.store.session() as s:
            me = self._ctx.me(s)
            proj = self._ctx.project(s, me, project, Action.PROJECT_UPDATE)
            proj.options = {**proj.options, key: value}
            self._ctx.audit(s, me, "project.set-option", project=proj, resource=key, value=value)

    def _info(self, s: Session, row: t.Project, role: Role | None) -> ProjectInfo:
        members = s.scalar(select(func.count()).where(t.Membership.project_id == row.id)) or 0
        return ProjectInfo(
            name=row.name,
            description=row.description,
            created_at=row.created_at,
            created_by=row.created_by,
            role=role,
            members=members,
        )


class Users:
    """Platform users. Admins list and register them; the first `genai init` makes one."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def whoami(self) -> UserInfo:
        with self._ctx.store.session() as s:
            me = self._ctx.me(s)
            row = s.get(t.Principal, me.id)
            assert row is not None
            return UserInfo(name=row.name, is_admin=me.is_admin, created_at=row.created_at)

    def add(self, name: str, *, admin: bool = False) -> UserInfo:
        check_user_name(name)
        with self._ctx.store.session() as s:
            me = self._ctx.me(s)
            _require_admin(me, "register users")
            row = _find_principal(s, None, name, "user")
            if row is None:
                row = t.Principal(kind="user", name=name, is_admin=admin)
                s.add(row)
            elif row.is_admin == admin:
                return UserInfo(name=row.name, is_admin=row.is_admin, created_at=row.created_at)
            else:
                row.is_admin = admin
            self._ctx.audit(s, me, "user.set", resource=f"user:{name}", admin=admin)
            s.flush()
            return UserInfo(name=row.name, is_admin=row.is_admin, created_at=row.created_at)

    def list(self) -> builtins.list[UserInfo]:
        with self._ctx.store.session() as s:
            me = self._ctx.me(s)
            _require_admin(me, "list users")
            rows = s.scalars(
                select(t.Principal).where(t.Principal.kind == "user").order_by(t.Principal.name)
            )
            return [
                UserInfo(name=r.name, is_admin=r.is_admin, created_at=r.created_at) for r in rows
            ]


def _require_admin(me: Principal, what: str) -> None:
    if not me.is_admin:
        raise Forbidden(f"only platform admins may {what}; {me.label} is not one")


def _find_principal(s: Session, project_id: int | None, name: str, kind: str) -> t.Principal | None:
    query = select(t.Principal).where(t.Principal.kind == kind, t.Principal.name == name)
    if kind == "service":
        query = query.where(t.Principal.project_id == project_id)
    return s.scalars(query).one_or_none()


def _check_grantable(me: Principal, project: t.Project, role: Role) -> None:
    if me.is_admin:
        return
    mine = me.role_in(project.id)
    assert mine is not None  # authorize() let us in
    if role > mine:
        raise Forbidden(
            f"{me.label} has role {mine.value} in project {project.name!r} and cannot grant, "
            f"change or remove role {role.value}: ask an owner"
        )


def _keep_an_owner(s: Session, project: t.Project) -> None:
    owners = s.scalar(
        select(func.count()).where(
            t.Membership.project_id == project.id, t.Membership.role == Role.OWNER.value
        )
    )
    if (owners or 0) <= 1:
        raise ConflictError(
            f"project {project.name!r} would have no owner: add another owner first"
        )


def _member_info(principal: t.Principal, member: t.Membership) -> MemberInfo:
    return MemberInfo(
        name=principal.name, kind=principal.kind, role=Role(member.role), since=member.created_at
    )
