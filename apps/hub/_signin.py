"""Signing in and out: a project key typed into a form, or a one-time link from the CLI
(single sign-on, ``apps/hub/_oidc.py``, ends in :func:`start_session` too).

The sign-in form is protected from cross-site posts too (login CSRF) by a random token in a
SameSite=Strict cookie that the form must repeat. A key that does not work is refused with
the same words whatever the reason, and the page never echoes the key back. Signing out
ends the session on the server (see ``apps/hub/_sessions.py``): a copy of the cookie taken
before is refused, and a key minted for the session (a link's, single sign-on's) is revoked.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials

from apps.hub._sessions import LINK_TTL_S, SESSION_TTL_S, Session
from apps.hub._web import (
    COOKIE,
    SIGNIN_COOKIE,
    CsrfRefused,
    HubState,
    check_csrf,
    render,
    session_of,
    state_of,
    with_headers,
)
from genai.errors import AuthenticationError, GenAIError
from genai.tenancy import KEY_PATTERN

__all__ = ["form_page", "router", "safe_next", "start_session"]

router = APIRouter()
_MAX_FORM_BYTES = 16 * 1024


async def read_form(request: Request) -> dict[str, str]:
    """An url-encoded form's fields (the first value of each); a body too large or of
    another type reads as empty, which the caller refuses by the missing field."""
    if "application/x-www-form-urlencoded" not in request.headers.get("content-type", ""):
        return {}
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM_BYTES:
            return {}
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}


def safe_next(hub: HubState, target: str | None) -> str | None:
    """Only a path of this Hub (no scheme, no host, no '//'): never an open redirect."""
    if not target or not target.startswith(hub.prefix + "/") or target.startswith("//"):
        return None
    if any(c in target for c in "\\\r\n") or "://" in target:
        return None
    return target


@router.get("/", include_in_schema=False)
def home(request: Request) -> Response:
    """The project of the session, or the sign-in page."""
    hub = state_of(request)
    session = hub.codec.open_session(request.cookies.get(COOKIE))
    target = hub.url("p", session.project) if session else hub.url("signin")
    return with_headers(RedirectResponse(target, status_code=303))


@router.get("/signin", include_in_schema=False)
def signin_form(request: Request, next: str | None = None) -> Response:
    return form_page(request, next=next)


def form_page(
    request: Request,
    *,
    next: str | None,
    error: str = "",
    status: int = 200,
    token: str | None = None,
    projects: Sequence[str] = (),
    signed_in_as: str = "",
) -> Response:
    """The sign-in page; ``token`` keeps the form's CSRF token of a refused attempt (so
    another try, or another tab, still works). ``projects``: the projects a person who
    signed in with single sign-on (as ``signed_in_as``) may choose from."""
    hub = state_of(request)
    token = token or secrets.token_urlsafe(24)
    settings = hub.settings
    response = render(
        request,
        "signin.html",
        status=status,
        signin_csrf=token,
        next=safe_next(hub, next) or "",
        error=error,
        oidc_name=settings.oidc_provider_name if settings.oidc_issuer else "",
        projects=list(projects),
        signed_in_as=signed_in_as,
    )
    response.set_cookie(
        SIGNIN_COOKIE,
        token,
        max_age=3600,
        path=hub.prefix,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


_REFUSED = (
    "That key did not sign you in: it may be mistyped, revoked or expired. Create one with "
    "`genai key create --project NAME`."
)


@router.post("/signin", include_in_schema=False)
async def signin(request: Request) -> Response:
    """Check the key as the API does, then start a session in its project."""
    hub = state_of(request)
    form = await read_form(request)
    expected = request.cookies.get(SIGNIN_COOKIE, "")
    given = form.get("csrf", "")
    if not expected or not secrets.compare_digest(expected.encode(), given.encode()):
        raise CsrfRefused()
    key = form.get("key", "").strip()
    next_page = form.get("next")
    if not KEY_PATTERN.match(key):
        return form_page(request, next=next_page, error=_REFUSED, status=401, token=expected)
    try:
        project = await run_in_threadpool(_project_of, hub, key)
    except AuthenticationError:
        return form_page(request, next=next_page, error=_REFUSED, status=401, token=expected)
    target = safe_next(hub, next_page)
    if target is None or not target.startswith(hub.url("p", project)):
        target = hub.url("p", project)
    return start_session(request, hub, key, project, target)


def _project_of(hub: HubState, key: str) -> str:
    """The one project a key acts in (an AuthenticationError for a key that does not work)."""
    acting = hub.api.caller(HTTPAuthorizationCredentials(scheme="Bearer", credentials=key))
    projects = acting.client.projects.list()
    if len(projects) != 1:
        raise AuthenticationError("a project key acts in exactly one project")
    return projects[0].name


def start_session(
    request: Request, hub: HubState, key: str, project: str, target: str, *, minted: bool = False
) -> Response:
    """Signed in: the sealed session cookie, and off to ``target``. ``minted``: the key was
    made for this session (revoked when it signs out)."""
    _, cookie = hub.codec.new_session(key, project, minted=minted)
    response = with_headers(RedirectResponse(target, status_code=303))
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=SESSION_TTL_S,
        path=hub.prefix,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    response.delete_cookie(SIGNIN_COOKIE, path=hub.prefix)
    return response


@router.get("/signin/link", include_in_schema=False)
def signin_link(request: Request, token: Annotated[str, Query(max_length=4096)] = "") -> Response:
    """A one-time link from the CLI: its token works once, within LINK_TTL_S."""
    hub = state_of(request)
    link = hub.codec.open_link(token)
    if link is None:
        return form_page(request, next=None, error="That sign-in link is not valid.", status=401)
    if link.expires <= hub.codec.now():
        message = "That sign-in link has expired: ask the CLI for a new one (`genai hub link`)."
        return form_page(request, next=None, error=message, status=401)
    first, _ = hub.api.counters.add(
        f"genai-hub:link:{link.nonce}", 1, limit=1, ttl_s=LINK_TTL_S + 60
    )
    if not first:
        message = "That sign-in link was used already: each link signs in once."
        return form_page(request, next=None, error=message, status=401)
    try:
        project = _project_of(hub, link.key)
    except AuthenticationError:
        return form_page(request, next=None, error=_REFUSED, status=401)
    return start_session(request, hub, link.key, project, hub.url("p", project), minted=True)


@router.post("/signout", include_in_schema=False)
async def signout(request: Request) -> Response:
    hub = state_of(request)
    session = session_of(request)
    check_csrf(session, (await read_form(request)).get("csrf"))
    await run_in_threadpool(_end, hub, session)
    response = with_headers(RedirectResponse(hub.url("signin"), status_code=303))
    response.delete_cookie(COOKIE, path=hub.prefix)
    return response


def _end(hub: HubState, session: Session) -> None:
    """End the session on the server: every copy of its cookie is refused from now on (the
    record), and a key minted for it stops working anywhere (revoked, by itself)."""
    hub.codec.sign_out(session, hub.api.counters)
    if not session.minted:
        return  # a key the person typed in is theirs: it outlives the session
    try:
        acting = hub.api.caller(
            HTTPAuthorizationCredentials(scheme="Bearer", credentials=session.key)
        )
        acting.client.keys.revoke(session.project, session.key)
    except GenAIError:  # revoked or expired already, or its project is gone
        return
