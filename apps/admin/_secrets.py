"""``/api`` routes of project secrets: set (write-only), list names, delete.

A value goes in and never comes out: no route returns it, and the access log records only
the method and path. A change drops this gateway's cached secrets of the project, so the
next request sends the new key (other gateway processes: within their cache TTL).
"""

from __future__ import annotations

import anyio.from_thread
from fastapi import APIRouter, Response, status
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from apps.admin._auth import Scope, Scoped
from genai.tenancy import Action, SecretInfo

__all__ = ["router"]

router = APIRouter(prefix="/api/projects/{project}/secrets", tags=["secrets"])


class SecretSet(BaseModel):
    """The value of a secret: write-only, never returned, never logged."""

    model_config = ConfigDict(extra="forbid")

    value: SecretStr = Field(
        description="The credential (one line, at most 8 KiB), e.g. a vendor's API key. "
        "Deployments send it as 'Authorization: Bearer <value>' to their target's url.",
        examples=["sk-…"],
    )


@router.get("")
def list_secrets(scope: Scoped) -> list[SecretInfo]:
    """The project's secrets by name, with who set each and when; never a value."""
    return scope.client.secrets.list(scope.project)


@router.put("/{name}")
def set_secret(scope: Scoped, name: str, body: SecretSet) -> SecretInfo:
    """Create or replace secret ``name`` (maintainers and owners; others get a 403); targets
    refer to it as ``api_key_secret: <name>``. The answer describes the secret without its
    value; a 400 never quotes the value back."""
    scope.require(Action.SECRET_WRITE)
    info = scope.client.secrets.set(scope.project, name, body.value)
    _dropped(scope)
    return info


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def delete_secret(scope: Scoped, name: str) -> Response:
    """Delete secret ``name`` (maintainers and owners): deployments using it fail with a 502
    naming the fix until it is set again."""
    scope.require(Action.SECRET_WRITE)
    scope.client.secrets.delete(scope.project, name)
    _dropped(scope)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _dropped(scope: Scope) -> None:
    """Drop this gateway's cached secrets of the project (on its event loop)."""
    credentials = scope.api.gateway.targets.credentials
    if credentials is not None:
        project_id = scope.project_id
        anyio.from_thread.run_sync(lambda: credentials.invalidate(project_id))
