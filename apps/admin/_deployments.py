"""``/api`` routes of deployments: list, show, apply a spec, change the traffic."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, ConfigDict, Field

from apps.admin._auth import Scoped
from apps.admin._params import Id
from apps.deployments import TrafficChange, apply_spec, change_traffic, newest_revisions
from genai.registry import DeploymentRevision
from genai.tenancy import Action

__all__ = ["router"]

router = APIRouter(prefix="/api/projects/{project}/deployments", tags=["deployments"])

_SPEC_EXAMPLE = {
    "targets": [
        {"name": "stable", "url": "http://127.0.0.1:8001/v1", "model": "tiny", "weight": 90},
        {"name": "canary", "url": "http://127.0.0.1:8002/v1", "model": "tiny", "weight": 10},
    ],
    "policy": "weighted",
}


class DeploymentApply(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spec: dict[str, Any] = Field(
        description="A deployment spec: targets (each an OpenAI-compatible url with its model, "
        "or an in-process backend), policy (weighted, ab, bandit), sticky_header, fallbacks, "
        "shadow {target, sample}, retries, backoff_s, circuit, bandit, adapters. "
        "Checked as a whole; the first problem is named with its place.",
        examples=[_SPEC_EXAMPLE],
    )
    description: str = ""
    model: str | None = Field(
        default=None, description="The registered base model it serves (for lineage)."
    )
    adapter: str | None = Field(
        default=None, description="The registered adapter it serves (for lineage)."
    )


@router.get("")
def list_deployments(scope: Scoped) -> list[DeploymentRevision]:
    """The newest revision of every deployment of the project."""
    return newest_revisions(scope.client, scope.project)


Revision = Annotated[Id | None, Query(description="A revision number; the newest when left out.")]


@router.get("/{name}")
def get_deployment(scope: Scoped, name: str, revision: Revision = None) -> DeploymentRevision:
    """The newest revision of ``name``, or the revision asked for."""
    ref = name if revision is None else f"{name}@{revision}"
    return scope.client.registry.deployments.get(scope.project, ref)


@router.get("/{name}/revisions")
def list_revisions(scope: Scoped, name: str) -> list[DeploymentRevision]:
    """Every revision of ``name``, newest first."""
    return scope.client.registry.deployments.list(scope.project, name=name)


@router.post("/{name}/revisions", status_code=status.HTTP_201_CREATED)
def apply_deployment(scope: Scoped, name: str, body: DeploymentApply) -> DeploymentRevision:
    """Apply a spec: a new revision of ``name`` (maintainers and owners), routable at once."""
    scope.require(Action.DEPLOYMENT_WRITE)
    return scope.run(
        lambda: apply_spec(
            scope.client,
            scope.project,
            name,
            body.spec,
            description=body.description,
            model=body.model,
            adapter=body.adapter,
        ),
        routes=True,
    )


@router.post("/{name}/traffic", status_code=status.HTTP_201_CREATED)
def set_traffic(scope: Scoped, name: str, body: TrafficChange) -> DeploymentRevision:
    """Change weights, policy, sticky header or shadow: a new revision from the newest one."""
    scope.require(Action.DEPLOYMENT_WRITE)
    return scope.run(lambda: change_traffic(scope.client, scope.project, name, body), routes=True)
