"""The admin API under ``/api``: projects, members, keys, quotas, deployments, traffic,
usage, the audit log and agents' approvals, over the same services as the CLI and the
Python API (so every call is authorized and every change is in the audit log).

Authentication is ``Authorization: Bearer <credential>``:

- a project API key acts as the key's principal, with the key's role, inside its own
  project only: any other project is a 404 worded as for a project that does not exist;
- the operator token (``GENAI_ADMIN_TOKEN``) acts as the platform admin user
  (``GENAI_USER``). Platform-wide operations (create a project, the whole audit log) need
  it, and are refused (403) while no token is configured.

A change to keys, members, quotas or deployments drops this gateway's cached callers or
routes of the project, so it applies to the next request here (in other gateway
processes: within their cache TTL). Errors have OpenAI's shape and genai.errors' statuses.
"""

from __future__ import annotations

import functools

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from apps.admin import _agents, _deployments, _secrets, _tenancy
from apps.admin._auth import AdminAPI, http_error, invalid_request
from apps.admin._params import ADMIN_ERRORS, StrictJsonBodies
from genai.gateway import Gateway
from genai.settings import Settings

__all__ = ["AdminAPI", "mount_admin"]


def mount_admin(app: FastAPI, gateway: Gateway) -> None:
    """Add the ``/api`` routes to the gateway's app (its settings are ``app.state.settings``)."""
    settings = getattr(app.state, "settings", None)
    if not isinstance(settings, Settings):
        raise TypeError("mount_admin needs app.state.settings (create_gateway_app sets it)")
    app.state.admin = AdminAPI(gateway, settings)
    for router in (_tenancy.router, _deployments.router, _secrets.router, _agents.router):
        # every route documents the errors every route may give (OpenAI's error body)
        app.include_router(router, responses=ADMIN_ERRORS)
    app.add_middleware(StrictJsonBodies)  # each key once, no NaN: before a route reads it
    app.add_exception_handler(RequestValidationError, invalid_request)
    # off /api, the app's own answer stays (the gateway's: OpenAI's shape on /v1)
    fallback = app.exception_handlers.get(HTTPException)
    app.add_exception_handler(HTTPException, functools.partial(http_error, fallback=fallback))
