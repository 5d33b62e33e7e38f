"""The Hub: a web UI for an AI Project, served by the gateway process under ``/hub``.

Server-rendered pages (Jinja2, autoescaping on) over the same services and ``authorize()``
as the admin API, a small stylesheet and one script of our own (the chat page's stream
reader), all served from this package: no CDN, no Node build, nothing fetched from
elsewhere (the Content-Security-Policy says ``'self'`` only).

- Sign in with a project key (a form) or a one-time link the CLI prints
  (:func:`sign_in_link`); the session is a sealed HttpOnly, SameSite=Lax cookie and every
  form carries a CSRF token (see ``apps/hub/_sessions.py``).
- Pages: the project (members, roles, keys, quota), deployments (targets, traffic),
  prompts (versions, labels, diffs), the registry (models, datasets, runs, adapters),
  usage by model and day, agent runs and the approvals that wait, evaluations (runs with
  their confidence intervals, two runs compared with the paired test, row by row).
- A chat page for every deployment, streamed through the gateway as the session's key,
  and a prompt playground that runs two versions of a prompt side by side the same way.
- Published apps: a deployment at a public link (``/hub/apps/{slug}``) with a script-tag
  widget and an iframe for other sites, an app token instead of a key, its own daily
  quota, CORS and ``frame-ancestors`` per app (``apps/hub/_published.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI

from apps.hub._sessions import HUB_KEY_NAME
from genai.errors import MissingDependencyError
from genai.gateway import Gateway
from genai.settings import Settings

__all__ = ["HUB_KEY_NAME", "HUB_PREFIX", "create_hub", "mount_hub", "sign_in_link"]

HUB_PREFIX = "/hub"
_HERE = Path(__file__).parent


def create_hub(
    gateway: Gateway,
    settings: Settings,
    *,
    prefix: str = HUB_PREFIX,
    now: Callable[[], float] = time.time,
) -> FastAPI:
    """The Hub as an ASGI app to mount at ``prefix`` of the gateway's app. ``now`` is the
    clock of session and link lifetimes (seconds since the epoch; injectable for tests)."""
    try:
        import jinja2  # noqa: F401
    except ImportError as error:
        raise MissingDependencyError("jinja2", extra="hub", purpose="The Hub's pages") from error
    from fastapi.staticfiles import StaticFiles

    from apps.hub import (
        _chat,
        _evals,
        _forms,
        _knowledge,
        _oidc,
        _pages,
        _playground,
        _published,
        _runs,
        _signin,
    )
    from apps.hub._web import HubState, hub_errors

    hub = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    hub.state.hub = HubState.build(gateway, settings, prefix=prefix, now=now)
    for kind, handler in hub_errors().items():
        hub.add_exception_handler(kind, handler)
    hub.mount("/static", StaticFiles(directory=str(_HERE / "static")), name="static")
    # the pages' router ends with the catch-all 404: last
    routers = (
        _signin.router,
        _oidc.router,  # single sign-on (OpenID Connect), when configured
        _chat.router,
        _forms.router,
        _knowledge.router,
        _evals.router,
        _playground.router,
        _runs.router,  # a run's loss curves, the lineage graph
        _published.router,  # published apps: public pages, widget, publishing
        _pages.router,
    )
    for router in routers:
        hub.include_router(router)
    return hub


def mount_hub(app: FastAPI, gateway: Gateway, *, prefix: str = HUB_PREFIX) -> None:
    """Serve the Hub at ``prefix`` of the gateway's app (its settings: ``app.state.settings``)."""
    settings = getattr(app.state, "settings", None)
    if not isinstance(settings, Settings):
        raise TypeError("mount_hub needs app.state.settings (create_gateway_app sets it)")
    hub = create_hub(gateway, settings, prefix=prefix)
    hub.state.hub.parent = app
    app.mount(prefix, hub)


def sign_in_link(
    settings: Settings,
    project: str,
    *,
    base_url: str = "http://127.0.0.1:4000",
    user: str | None = None,
) -> str:
    """A one-time link that signs the local user (``user``, default ``settings.user``) into
    the Hub of the gateway at ``base_url``, inside ``project``, as Jupyter's token links do.

    It mints a key for the user (named ``hub-sign-in``, the user's role in the project,
    expiring with the session after 12 hours) and revokes the user's earlier ``hub-sign-in``
    keys of the project, which signs out the browsers an earlier link signed in. The link
    is good once, for 15 minutes, on any gateway process that shares the platform's secret
    key (``GENAI_SECRET_KEY`` or ``GENAI_HOME/secret.key``) and database."""
    from apps.hub._sessions import SessionCodec, mint_hub_key
    from genai import connect

    with connect(settings, user=user) as client:
        secret = mint_hub_key(client, project)
    token = SessionCodec(settings, now=time.time).new_link(secret, project)
    return f"{base_url.rstrip('/')}{HUB_PREFIX}/signin/link?token={quote(token, safe='')}"
