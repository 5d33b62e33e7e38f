"""``/api`` routes of AI Projects: projects, members, keys, quotas, usage and the audit log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field

from apps.admin._auth import Caller, Operator, Scoped
from apps.admin._params import Count32, IsoDate, ListLimit, Money, Positive32, Positive64
from genai.errors import ValidationError
from genai.tenancy import (
    GROUPS,
    ApiKeyInfo,
    AuditEntry,
    CreatedKey,
    MemberInfo,
    ProjectInfo,
    QuotaLimits,
    QuotaStatus,
    Role,
    UsageReport,
)

__all__ = ["router"]

router = APIRouter(prefix="/api")
_GONE = status.HTTP_204_NO_CONTENT


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProjectCreate(_Body):
    name: str = Field(description="3-40 lower-case letters, digits and hyphens.")
    description: str = ""


class MemberAdd(_Body):
    name: str = Field(description="A user name, or a service account's with service=true.")
    role: Role
    service: bool = Field(default=False, description="A service account of this project.")


class KeyCreate(_Body):
    role: Role
    name: str = Field(default="default", description="A label for the key.")
    expires_in: str | None = Field(default=None, examples=["90d"], description="e.g. 90d, 12h.")
    service_account: str | None = Field(
        default=None, description="Issue the key to this service account of the project."
    )


class QuotaChange(_Body):
    """The limits to change; a limit left out stays, and null makes it unlimited."""

    requests_per_minute: Positive32 | None = None
    tokens_per_day: Positive64 | None = None
    budget_usd_per_month: Annotated[Money, Field(gt=0)] | None = None
    adapter_slots: Count32 | None = None
    max_in_flight: Positive32 | None = Field(
        default=None,
        description="Requests in progress at once per gateway process; the gateway's "
        "GENAI_GATEWAY_MAX_IN_FLIGHT_PER_PROJECT applies when lower.",
    )
    gpus: Count32 | None = Field(
        default=None, description="GPUs the project's Kubernetes deployments may request."
    )


# ------------------------------------------------------------------ projects


@router.get("/projects", tags=["projects"])
def list_projects(acting: Caller) -> list[ProjectInfo]:
    """Every project for the operator token; a key's own project for a project key."""
    return acting.client.projects.list()


@router.post("/projects", tags=["projects"], status_code=status.HTTP_201_CREATED)
def create_project(body: ProjectCreate, acting: Operator) -> ProjectInfo:
    """Create a project (operator token only); the platform admin becomes its owner."""
    return acting.client.projects.create(body.name, description=body.description)


@router.get("/projects/{project}", tags=["projects"])
def get_project(scope: Scoped) -> ProjectInfo:
    return scope.client.projects.get(scope.project)


@router.delete("/projects/{project}", tags=["projects"], status_code=_GONE, response_class=Response)
def delete_project(scope: Scoped) -> None:
    """Delete a project and everything in it (owners); its keys stop working at once."""
    scope.run(lambda: scope.client.projects.delete(scope.project), callers=True, routes=True)


# ------------------------------------------------------------------ members


@router.get("/projects/{project}/members", tags=["members"])
def list_members(scope: Scoped) -> list[MemberInfo]:
    return scope.client.projects.members(scope.project)


@router.post("/projects/{project}/members", tags=["members"])
def add_member(scope: Scoped, body: MemberAdd) -> MemberInfo:
    """Give a user (or service account) a role in the project, or change it."""
    return scope.run(
        lambda: scope.client.projects.add_member(
            scope.project, body.name, role=body.role, service=body.service
        ),
        callers=True,
    )


@router.delete(
    "/projects/{project}/members/{name}",
    tags=["members"],
    status_code=_GONE,
    response_class=Response,
)
def remove_member(scope: Scoped, name: str, service: bool = False) -> None:
    """Remove a member; their keys for the project are revoked."""
    scope.run(
        lambda: scope.client.projects.remove_member(scope.project, name, service=service),
        callers=True,
    )


# ------------------------------------------------------------------ keys


@router.get("/projects/{project}/keys", tags=["keys"])
def list_keys(scope: Scoped, include_revoked: bool = False) -> list[ApiKeyInfo]:
    return scope.client.keys.list(scope.project, include_revoked=include_revoked)


@router.post("/projects/{project}/keys", tags=["keys"], status_code=status.HTTP_201_CREATED)
def create_key(scope: Scoped, body: KeyCreate) -> CreatedKey:
    """Create a key; ``secret`` is the key itself, returned this once and never stored."""
    return scope.client.keys.create(
        scope.project,
        role=body.role,
        name=body.name,
        expires_in=body.expires_in,
        service_account=body.service_account,
    )


KeyRef = Annotated[
    str,
    Path(
        description="The key's prefix (gk_ and 10 characters) or its id.",
        examples=["gk_abcdefghij", "42"],
    ),
]


@router.delete("/projects/{project}/keys/{key}", tags=["keys"])
def revoke_key(scope: Scoped, key: KeyRef) -> ApiKeyInfo:
    """Revoke a key named by its prefix (gk_xxxxxxxxxx) or id; the gateway refuses it at once."""
    return scope.run(lambda: scope.client.keys.revoke(scope.project, key), callers=True)


# ------------------------------------------------------------------ quotas


@router.get("/projects/{project}/quota", tags=["quotas"])
def get_quota(scope: Scoped) -> QuotaStatus:
    """The limits, and what this minute, day and month used of them."""
    return scope.client.quotas.get(scope.project)


@router.patch("/projects/{project}/quota", tags=["quotas"])
def set_quota(scope: Scoped, body: QuotaChange) -> QuotaLimits:
    """Change the limits given (owners); null makes a limit unlimited."""
    changes = body.model_dump(include=body.model_fields_set)
    if not changes:
        raise ValidationError(
            "name a limit to set: " + ", ".join(QuotaChange.model_fields), field="quota"
        )
    return scope.run(lambda: scope.client.quotas.set(scope.project, **changes), callers=True)


# ------------------------------------------------------------------ usage and audit

GroupBy = Annotated[
    str, Query(description="Comma-separated, any of: " + ", ".join(GROUPS), examples=["model,day"])
]
Since = Annotated[IsoDate | None, Query(description="First day (UTC), inclusive: YYYY-MM-DD.")]
Until = Annotated[IsoDate | None, Query(description="Last day (UTC), inclusive: YYYY-MM-DD.")]


def _groups(text: str) -> list[str]:
    return [g.strip() for g in text.split(",") if g.strip()]


@router.get("/projects/{project}/usage", tags=["usage"])
def project_usage(
    scope: Scoped, group_by: GroupBy = ",".join(GROUPS), since: Since = None, until: Until = None
) -> UsageReport:
    """Showback of the project: requests, tokens, cost, GPU time, cache hits, errors."""
    return scope.client.usage.report(
        scope.project, group_by=_groups(group_by), since=since, until=until
    )


@router.get("/usage", tags=["usage"])
def usage(
    acting: Caller, group_by: GroupBy = ",".join(GROUPS), since: Since = None, until: Until = None
) -> UsageReport:
    """Showback of every project the caller may read: all of them for the operator token."""
    return acting.client.usage.report(None, group_by=_groups(group_by), since=since, until=until)


Limit = Annotated[ListLimit, Query(description="At most this many entries.")]


@router.get("/projects/{project}/audit", tags=["audit"])
def project_audit(scope: Scoped, action: str | None = None, limit: Limit = 100) -> list[AuditEntry]:
    """Who did what in the project, newest first (maintainers and owners)."""
    return scope.client.audit.list(scope.project, action=action, limit=limit)


@router.get("/audit", tags=["audit"])
def audit(acting: Operator, action: str | None = None, limit: Limit = 100) -> list[AuditEntry]:
    """The whole audit log, newest first (operator token only)."""
    return acting.client.audit.list(None, action=action, limit=limit)
