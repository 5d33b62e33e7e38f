"""Roles, actions, the permission table, and the one ``authorize`` every entry point calls."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from genai.errors import Forbidden, NotFoundError, ValidationError

__all__ = [
    "PERMISSIONS",
    "Action",
    "Principal",
    "Resource",
    "Role",
    "authorize",
    "parse_role",
]


class Role(StrEnum):
    VIEWER = "viewer"
    DEVELOPER = "developer"
    MAINTAINER = "maintainer"
    OWNER = "owner"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Role):
            return NotImplemented
        return self.rank >= other.rank

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Role):
            return NotImplemented
        return self.rank > other.rank

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Role):
            return NotImplemented
        return self.rank <= other.rank

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Role):
            return NotImplemented
        return self.rank < other.rank


_RANK = {Role.VIEWER: 0, Role.DEVELOPER: 1, Role.MAINTAINER: 2, Role.OWNER: 3}


def parse_role(value: str | Role) -> Role:
    try:
        return Role(str(value).lower())
    except ValueError:
        names = ", ".join(role.value for role in Role)
        raise ValidationError(f"unknown role {value!r}: use one of {names}", field="role") from None


class Action(StrEnum):
    """What a principal may do inside a project (platform-level ones are marked)."""

    PROJECT_CREATE = "project:create"  # platform level
    PROJECT_READ = "project:read"
    PROJECT_UPDATE = "project:update"
    PROJECT_DELETE = "project:delete"
    MEMBER_READ = "member:read"
    MEMBER_MANAGE = "member:manage"
    KEY_READ = "key:read"
    KEY_CREATE = "key:create"
    KEY_REVOKE = "key:revoke"  # other principals' keys; one's own needs nothing more
    QUOTA_READ = "quota:read"
    QUOTA_UPDATE = "quota:update"
    USAGE_READ = "usage:read"
    USAGE_RECORD = "usage:record"
    AUDIT_READ = "audit:read"
    REGISTRY_READ = "registry:read"
    REGISTRY_WRITE = "registry:write"
    ALIAS_SET = "alias:set"
    ALIAS_SET_PROTECTED = "alias:set-protected"
    DEPLOYMENT_WRITE = "deployment:write"
    KB_DELETE = "kb:delete"  # a knowledge base and its vectors (ingesting is registry:write)
    SECRET_READ = "secret:read"  # the names of project secrets (values are never read back)
    SECRET_WRITE = "secret:write"  # set or delete a project secret
    MODEL_INVOKE = "model:invoke"
    AGENT_APPROVE = "agent:approve"  # decide an agent's tool call that waits for approval


_VIEWER = frozenset(
    {
        Action.PROJECT_READ,
        Action.MEMBER_READ,
        Action.QUOTA_READ,
        Action.USAGE_READ,
        Action.REGISTRY_READ,
        Action.SECRET_READ,
    }
)
_DEVELOPER = _VIEWER | {
    Action.MODEL_INVOKE,
    Action.REGISTRY_WRITE,
    Action.ALIAS_SET,
    Action.KEY_READ,
    Action.KEY_CREATE,
    Action.USAGE_RECORD,
}
_MAINTAINER = _DEVELOPER | {
    Action.ALIAS_SET_PROTECTED,
    Action.DEPLOYMENT_WRITE,
    Action.SECRET_WRITE,
    Action.KB_DELETE,
    Action.AGENT_APPROVE,
    Action.MEMBER_MANAGE,
    Action.KEY_REVOKE,
    Action.AUDIT_READ,
}
_OWNER = _MAINTAINER | {Action.PROJECT_UPDATE, Action.PROJECT_DELETE, Action.QUOTA_UPDATE}

#: The explicit permission table: what each role may do in its project.
PERMISSIONS: Mapping[Role, frozenset[Action]] = {
    Role.VIEWER: _VIEWER,
    Role.DEVELOPER: frozenset(_DEVELOPER),
    Role.MAINTAINER: frozenset(_MAINTAINER),
    Role.OWNER: frozenset(_OWNER),
}


def lowest_role_for(action: Action) -> Role | None:
    for role in sorted(Role, key=lambda r: r.rank):
        if action in PERMISSIONS[role]:
            return role
    return None


@dataclass(frozen=True)
class Principal:
    """Who is acting: a user or service account, with its roles at the moment of the call.

    ``grants`` maps project id to role. A principal that authenticated with an API key
    holds exactly one grant: the key's project, at the lower of the key's role and the
    owner's current membership.
    """

    id: int
    name: str
    kind: str = "user"
    is_admin: bool = False
    can_create_projects: bool = False
    grants: Mapping[int, Role] = field(default_factory=dict)
    key_id: int | None = None
    key_prefix: str | None = None

    @property
    def label(self) -> str:
        """How the audit log names this principal."""
        base = f"{self.kind}:{self.name}"
        return f"{base} via key {self.key_prefix}" if self.key_prefix else base

    def role_in(self, project_id: int) -> Role | None:
        return self.grants.get(project_id)


@dataclass(frozen=True)
class Resource:
    """What is acted on: ``project_id`` None means the platform itself."""

    kind: str
    name: str
    project_id: int | None


def authorize(principal: Principal, action: Action, resource: Resource) -> None:
    """Allow ``action`` on ``resource`` or raise.

    A principal that holds no role in the resource's project gets :class:`NotFoundError`,
    worded as if the resource did not exist, so no one learns what another project holds.
    A member whose role lacks the permission gets :class:`Forbidden`.
    """
    if principal.is_admin:
        return
    if resource.project_id is None:
        if action is Action.PROJECT_CREATE and principal.can_create_projects:
            return
        raise Forbidden(
            f"{principal.label} may not {action.value}: only platform admins may; "
            "ask one to run it, or to set GENAI_SELF_SERVICE_PROJECTS=true"
        )
    role = principal.role_in(resource.project_id)
    if role is None:
        raise NotFoundError(f"{resource.kind} {resource.name!r} not found")
    if action not in PERMISSIONS[role]:
        needed = lowest_role_for(action)
        raise Forbidden(
            f"{principal.label} has role {role.value} in this project, which may not "
            f"{action.value} on {resource.kind} {resource.name!r}; it needs role "
            f"{needed.value if needed else 'admin'} or higher: ask a project owner"
        )
