"""What every Hub route shares: its state, the signed-in caller, pages and their headers.

Every page resolves its caller again from the session cookie through the admin API's own
code (:class:`apps.admin.AdminAPI`): the key is verified, then the project of the URL is
looked up with ``authorize()`` exactly as ``/api/projects/{project}`` does, so a page shows
nothing the API would refuse and another project's page is the same 404 as a project that
does not exist.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials
from starlette.exceptions import HTTPException

from apps.admin import AdminAPI
from apps.admin._auth import Acting, Scope
from apps.hub._sessions import Session, SessionCodec
from genai.errors import (
    AuthenticationError,
    ConfigError,
    GenAIError,
    NotFoundError,
    http_status,
)
from genai.gateway import Gateway
from genai.settings import Settings

__all__ = [
    "COOKIE",
    "SECURITY_HEADERS",
    "SIGNIN_COOKIE",
    "CsrfRefused",
    "HubState",
    "Page",
    "SignInRequired",
    "call_gateway",
    "check_csrf",
    "hub_errors",
    "page_of",
    "render",
    "session_of",
    "state_of",
    "with_headers",
]

COOKIE = "genai_hub"
SIGNIN_COOKIE = "genai_hub_signin"  # the sign-in form's CSRF token, before any session
_HERE = Path(__file__).parent

#: Served with every Hub answer: nothing inline runs, nothing leaves the origin, no frames.
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",  # a sign-in link's token never leaves in a Referer
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}


class SignInRequired(Exception):
    """No usable session: the browser goes to the sign-in page (then back)."""


class CsrfRefused(Exception):
    """A POST without this session's CSRF token."""


@dataclass
class HubState:
    """The Hub's parts: the gateway it is served by, the admin API's caller resolution, the
    session codec, the templates, and where its pages live (``prefix``)."""

    gateway: Gateway
    settings: Settings
    api: AdminAPI
    codec: SessionCodec
    templates: Any  # a jinja2.Environment (autoescaping on)
    prefix: str = "/hub"
    extras: dict[str, Any] = field(default_factory=dict)  # what pages share once made
    parent: Any = None  # the gateway's ASGI app the Hub is mounted in (for /v1/feedback)

    @classmethod
    def build(
        cls,
        gateway: Gateway,
        settings: Settings,
        *,
        prefix: str = "/hub",
        now: Callable[[], float] = time.time,
    ) -> HubState:
        import jinja2

        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(_HERE / "templates")),
            autoescape=True,  # every value is escaped unless a template says otherwise
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,  # templates ship with the package: no stat per page
        )
        env.globals["url"] = lambda *parts, **query: url_for(prefix, *parts, **query)
        codec = SessionCodec(settings, now=now)
        return cls(gateway, settings, AdminAPI(gateway, settings), codec, env, prefix)

    def url(self, *parts: object, **query: object) -> str:
        return url_for(self.prefix, *parts, **query)


def url_for(prefix: str, *parts: object, **query: object) -> str:
    """``prefix/part/part?query``, each part quoted as one path segment."""
    path = "/".join(quote(str(p), safe="") for p in parts)
    url = f"{prefix}/{path}" if path else f"{prefix}/"
    given = {k: str(v) for k, v in query.items() if v is not None}
    return f"{url}?{urlencode(given)}" if given else url


def state_of(request: Request) -> HubState:
    hub: HubState = request.app.state.hub
    return hub


@dataclass(frozen=True)
class Page:
    """A signed-in request inside one project: the session and the project's scope."""

    session: Session
    scope: Scope
    hub: HubState

    @property
    def project(self) -> str:
        return self.scope.project


def session_of(request: Request) -> Session:
    """The request's session, or SignInRequired."""
    session = state_of(request).codec.open_session(request.cookies.get(COOKIE))
    if session is None:
        raise SignInRequired()
    return session


def acting_for(hub: HubState, session: Session) -> Acting:
    """The session key's principal, as the admin API resolves a bearer key (a session
    signed out on the server is refused, whichever copy of its cookie comes back)."""
    if hub.codec.signed_out(session, hub.api.counters):
        raise SignInRequired()
    credentials = HTTPAuthorizationCredentials(scheme="Bearer", credentials=session.key)
    try:
        return hub.api.caller(credentials)
    except AuthenticationError:
        raise SignInRequired() from None


def page_of(request: Request, project: str) -> Page:
    """The signed-in caller inside ``project`` (a 404 unless they may see it). Runs the
    database work of the check: call it from a worker thread (a sync route)."""
    hub = state_of(request)
    session = session_of(request)
    acting = acting_for(hub, session)
    try:
        scope = hub.api.scope(project, acting)
    except AuthenticationError:  # revoked or expired since the cookie was made
        raise SignInRequired() from None
    return Page(session, scope, hub)


async def call_gateway(hub: HubState, path: str, key: str, body: Any) -> tuple[int, Any]:
    """POST ``body`` to one of the gateway's own routes (``/v1/feedback``, an ``/api``
    route) in process, as ``key``: the Hub does what the API does, by the API's code. The
    answer's status and JSON body."""
    import httpx

    if hub.parent is None:
        raise ConfigError("this Hub is not mounted in a gateway app (use mount_hub)")
    transport = httpx.ASGITransport(app=hub.parent)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.internal") as http:
        answer = await http.post(path, json=body, headers={"authorization": f"Bearer {key}"})
    try:
        return answer.status_code, answer.json()
    except ValueError:
        return answer.status_code, {"error": {"message": answer.text[:500]}}


def check_csrf(session: Session, given: str | None) -> None:
    if not session.csrf_ok(given):
        raise CsrfRefused()


def render(
    request: Request,
    template: str,
    *,
    status: int = 200,
    page: Page | None = None,
    **values: Any,
) -> HTMLResponse:
    """A template as a page, with the security headers; ``page`` adds the project's
    navigation and the session's CSRF token."""
    hub = state_of(request)
    context: dict[str, Any] = {"prefix": hub.prefix, "project": None, "csrf": None, **values}
    if page is not None:
        context.update(project=page.project, csrf=page.session.csrf, section=values.get("section"))
    context.setdefault("section", None)
    html = hub.templates.get_template(template).render(context)
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def with_headers(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


def _error_page(request: Request, status: int, title: str, message: str) -> Response:
    if _wants_json(request):
        body = {"error": {"message": message, "code": status}}
        return with_headers(JSONResponse(body, status_code=status))
    return render(request, "error.html", status=status, title=title, message=message)


def hub_errors() -> Mapping[Any, Callable[..., Any]]:
    """The Hub's exception handlers: pages, never stack traces, and a sign-in redirect."""

    async def sign_in(request: Request, _: Exception) -> Response:
        hub = state_of(request)
        if _wants_json(request):
            return _error_page(request, 401, "Signed out", "sign in again: the session ended")
        target = request.url.path
        back = target if request.method == "GET" else None
        response = RedirectResponse(hub.url("signin", next=back), status_code=303)
        response.delete_cookie(COOKIE, path=hub.prefix)
        return with_headers(response)

    async def csrf(request: Request, _: Exception) -> Response:
        message = "the form's security token is missing or stale: reload the page and try again"
        return _error_page(request, 403, "Refused", message)

    async def genai_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, GenAIError)
        if isinstance(error, AuthenticationError):  # the key went away mid-page
            return await sign_in(request, error)
        status = http_status(error)
        if isinstance(error, NotFoundError):  # never says whether another project has it
            return _error_page(request, 404, "Not found", str(error))
        titles = {400: "Invalid input", 403: "Not allowed", 409: "Conflict", 429: "Slow down"}
        return _error_page(request, status, titles.get(status, "Error"), str(error))

    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        title = "Not found" if error.status_code == 404 else "Error"
        return _error_page(request, error.status_code, title, str(error.detail))

    async def invalid(request: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)
        first = error.errors()[0] if error.errors() else {"loc": (), "msg": "invalid"}
        where = ".".join(str(p) for p in first["loc"] if p not in ("query", "path", "body"))
        message = f"{where or 'the request'}: {first['msg']}"
        return _error_page(request, 400, "Invalid input", message)

    async def bug(request: Request, error: Exception) -> Response:
        import logging

        logging.getLogger("genai.hub").exception("unhandled error on %s", request.url.path)
        message = f"internal error ({type(error).__name__}): the gateway's log has the details"
        return _error_page(request, 500, "Internal error", message)

    return {
        SignInRequired: sign_in,
        CsrfRefused: csrf,
        GenAIError: genai_error,
        HTTPException: http_error,
        RequestValidationError: invalid,
        Exception: bug,
    }
