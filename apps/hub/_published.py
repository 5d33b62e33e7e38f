"""Published apps in the Hub: the public chat page, its widget and chat endpoint, and the
project page that publishes, lists and unpublishes them.

Public routes (no sign-in, no cookie):

- ``GET /hub/apps/{slug}``: the chat page (``?embed=1``: the compact one the widget frames).
  It holds a fresh app token, never a key. Its CSP says who may frame it
  (``frame-ancestors``: the app's allowed origins, or any site); every other Hub page keeps
  ``frame-ancestors 'none'`` and ``X-Frame-Options: DENY``.
- ``GET /hub/apps/{slug}/widget.js``: the script tag's chat bubble, which opens the page in
  an iframe on the embedding site.
- ``POST /hub/apps/{slug}/chat`` (and its CORS preflight): the conversation, answered by the
  gateway's own chat handler as the app's key, streamed. CORS answers only the app's
  allowed origins (any, when it lists none); the app's daily quotas are counted here, on the
  gateway's shared counters, before the gateway applies the project's own.

Unknown and unpublished slugs are the same 404, which names nothing.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.types import Message, Receive, Scope, Send

from apps.hub._chat import check_messages, gateway_stream, read_json
from apps.hub._published_store import (
    AppTokens,
    LiveApp,
    PublishedApps,
    find_app,
    unseal_key,
)
from apps.hub._signin import read_form
from apps.hub._web import (
    SECURITY_HEADERS,
    HubState,
    Page,
    check_csrf,
    page_of,
    render,
    session_of,
    state_of,
    with_headers,
)
from genai.errors import Forbidden, GenAIError, NotFoundError, ValidationError, http_status
from genai.tenancy import Role

__all__ = ["router"]

router = APIRouter()
_HERE = Path(__file__).parent
GONE = "there is no published app at this address (it may have been unpublished)"
_DAY_S = 86400
_CORS_HEADERS = "content-type, accept, x-app-token"
_KEY_GONE = (
    "this app cannot answer right now: its key no longer works (revoked, or its publisher "
    "left the project); the project's maintainers must publish it again"
)


def _tokens(hub: HubState) -> AppTokens:
    tokens = hub.extras.get("app-tokens")
    if not isinstance(tokens, AppTokens):
        tokens = hub.extras["app-tokens"] = AppTokens(hub.settings, now=hub.codec.now)
    return tokens


def _own_origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.headers.get('host', '')}".lower()


def _is_own(request: Request, origin: str) -> bool:
    """Whether ``origin`` is the Hub's own (its host and port: a proxy in front may end TLS,
    so the scheme the server sees is not always the browser's)."""
    return urlsplit(origin.lower()).netloc == request.headers.get("host", "").lower()


def _cors(request: Request, app: LiveApp) -> dict[str, str] | None:
    """The CORS headers of an answer to this request (none for the Hub's own pages), or
    None when the request comes from a site the app does not allow."""
    origin = request.headers.get("origin")
    if not origin or _is_own(request, origin):
        return {}
    if not app.allows(origin):
        return None
    return {
        "access-control-allow-origin": origin,
        "access-control-expose-headers": "x-request-id",
        "vary": "Origin",
    }


def _refusal(status: int, message: str, cors: dict[str, str]) -> Response:
    body = {"error": {"message": message, "code": status}}
    return JSONResponse(body, status_code=status, headers={**SECURITY_HEADERS, **cors})


def _frame_headers(app: LiveApp) -> dict[str, str]:
    """The Hub's headers, but framable by the app's allowed origins (any site if none)."""
    ancestors = " ".join(("'self'", *app.allowed_origins)) if app.allowed_origins else "*"
    headers = {k: v for k, v in SECURITY_HEADERS.items() if k != "x-frame-options"}
    csp = SECURITY_HEADERS["content-security-policy"]
    headers["content-security-policy"] = csp.replace(
        "frame-ancestors 'none'", f"frame-ancestors {ancestors}"
    )
    return headers


async def _live(hub: HubState, slug: str) -> LiveApp | None:
    return await run_in_threadpool(find_app, hub.gateway.store, slug)


# ------------------------------------------------------------------ public routes


@router.get("/apps/{slug}", include_in_schema=False)
def app_page(request: Request, slug: str, embed: Annotated[bool, Query()] = False) -> Response:
    hub = state_of(request)
    app = find_app(hub.gateway.store, slug)
    if app is None:
        raise NotFoundError(GONE)
    html = hub.templates.get_template("app.html").render(
        prefix=hub.prefix,
        app=app,
        token=_tokens(hub).new(app),
        endpoint=hub.url("apps", app.slug, "chat"),
        embed=embed,
    )
    return HTMLResponse(html, headers=_frame_headers(app))


@cache
def _widget_source() -> str:
    return (_HERE / "static" / "widget.js").read_text(encoding="utf-8")


@router.get("/apps/{slug}/widget.js", include_in_schema=False)
async def widget(request: Request, slug: str) -> Response:
    """The chat bubble for another site's pages (a classic script: no CORS needed)."""
    headers = {
        "x-content-type-options": "nosniff",
        "cross-origin-resource-policy": "cross-origin",
        "cache-control": "public, max-age=300",
    }
    if await _live(state_of(request), slug) is None:
        headers["cache-control"] = "no-store"
        return Response("/* " + GONE + " */\n", 404, headers, "text/javascript")
    return Response(_widget_source(), 200, headers, "text/javascript")


@router.options("/apps/{slug}/chat", include_in_schema=False)
async def chat_preflight(request: Request, slug: str) -> Response:
    app = await _live(state_of(request), slug)
    if app is None:
        return _refusal(404, GONE, {})
    cors = _cors(request, app)
    if cors is None:
        return _refusal(403, "this site may not use the app: its owner lists the sites", {})
    cors.update(
        {
            "access-control-allow-methods": "POST",
            "access-control-allow-headers": _CORS_HEADERS,
            "access-control-max-age": "600",
        }
    )
    return Response(status_code=204, headers={**SECURITY_HEADERS, **cors})


@router.post("/apps/{slug}/chat", include_in_schema=False)
async def chat(request: Request, slug: str) -> Response:
    """The gateway's streamed answer to ``{"messages": [...]}``, as the app's key."""
    hub = state_of(request)
    app = await _live(hub, slug)
    if app is None:
        return _refusal(404, GONE, {})
    cors = _cors(request, app)
    if cors is None:
        return _refusal(403, "this site may not use the app: its owner lists the sites", {})
    problem = _tokens(hub).problem(app, request.headers.get("x-app-token"))
    if problem is not None:
        return _refusal(401, problem, cors)
    try:
        messages = check_messages(await read_json(request))
    except GenAIError as error:
        return _refusal(http_status(error), str(error), cors)
    over = await _spend(hub, app)
    if over is not None:
        return _refusal(429, over, cors)
    key = await run_in_threadpool(unseal_key, hub.settings, app)
    body = {
        "model": app.deployment,
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    response = await gateway_stream(request, hub, key, body)
    if response.status_code in (401, 403):  # the app's key: never its words (its prefix)
        return _refusal(503, _KEY_GONE, cors)
    if app.tokens_per_day is not None and response.status_code == 200:
        response = _Counted(response, hub, _token_key(hub, app))
    response.headers.update({**SECURITY_HEADERS, **cors})
    return response


def _day(hub: HubState) -> int:
    return int(hub.codec.now() // _DAY_S)


def _token_key(hub: HubState, app: LiveApp) -> str:
    return f"genai-hub:app:{app.id}:{app.slug}:tokens:{_day(hub)}"


async def _spend(hub: HubState, app: LiveApp) -> str | None:
    """Count one request against the app's daily quotas: None, or why it is refused."""
    counters = hub.gateway.quota.counters
    if app.tokens_per_day is not None:
        used = await counters.get(_token_key(hub, app))
        if used >= app.tokens_per_day:
            return (
                f"this app has used its {app.tokens_per_day} tokens for today: "
                "try again tomorrow (the day ends at 00:00 UTC)"
            )
    if app.requests_per_day is not None:
        key = f"genai-hub:app:{app.id}:{app.slug}:requests:{_day(hub)}"
        added, _ = await counters.add(key, 1, limit=app.requests_per_day, ttl_s=2 * _DAY_S)
        if not added:
            return (
                f"this app has answered its {app.requests_per_day} requests for today: "
                "try again tomorrow (the day ends at 00:00 UTC)"
            )
    return None


class _Counted(Response):
    """The gateway's answer as it is, its tokens (the stream's usage event) counted against
    the app's daily quota before the last byte goes out (so the next request sees them)."""

    def __init__(self, inner: Response, hub: HubState, key: str) -> None:
        self._inner = inner
        self._hub = hub
        self._key = key
        self.status_code = inner.status_code
        self.media_type = inner.media_type
        self.background = None
        self.raw_headers = inner.raw_headers  # shared: headers set here reach the inner's

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        buffer = b""
        tokens = 0

        async def counting(message: Message) -> None:
            nonlocal buffer, tokens
            if message["type"] == "http.response.body":
                buffer += message.get("body", b"")
                *done, buffer = buffer.replace(b"\r\n", b"\n").split(b"\n\n")
                tokens = max([tokens, *(_usage_of(event) for event in done)])
                if not message.get("more_body", False) and tokens:
                    counters = self._hub.gateway.quota.counters
                    await counters.add(self._key, tokens, limit=None, ttl_s=2 * _DAY_S)
                    tokens = 0
            await send(message)

        await self._inner(scope, receive, counting)


def _usage_of(event: bytes) -> int:
    for line in event.split(b"\n"):
        if line.startswith(b"data:") and b'"usage"' in line:
            try:
                usage = json.loads(line[5:]).get("usage") or {}
                return int(usage.get("total_tokens") or 0)
            except (ValueError, TypeError, AttributeError):
                return 0
    return 0


# ------------------------------------------------------------------ the project's page


def _may_publish(page: Page) -> bool:
    mine = page.scope.client.projects.get(page.project).role
    return mine is None or mine >= Role.MAINTAINER


@router.get("/p/{project}/apps", include_in_schema=False)
def apps_page(request: Request, project: str) -> Response:
    """The project's published apps with their links and snippets, and the publish form."""
    from apps.deployments import newest_revisions

    page = page_of(request, project)
    try:
        published: list[Any] | str = PublishedApps(page.scope.client).list(page.project)
    except Forbidden as error:
        published = str(error)
    base = _own_origin(request) + page.hub.prefix
    return render(
        request,
        "apps.html",
        page=page,
        section="deployments",
        published=published,
        base=base,
        deployments=[r.name for r in newest_revisions(page.scope.client, page.project)],
        can_publish=_may_publish(page),
        chosen=request.query_params.get("deployment", ""),
    )


def _number(text: str | None, field: str) -> int | None:
    value = (text or "").strip()
    if not value:
        return None
    if not value.isascii() or not value.isdigit():
        raise ValidationError(
            f"{field} must be a whole number (or empty for no limit), not {value!r}", field=field
        )
    return int(value)


@router.post("/p/{project}/apps", include_in_schema=False)
async def publish(request: Request, project: str) -> Response:
    """Publish a deployment (maintainers and owners; ``deployment:write``)."""
    session = session_of(request)
    form = await read_form(request)
    check_csrf(session, form.get("csrf"))
    origins = [o for o in (form.get("origins") or "").split() if o]
    rpd = _number(form.get("requests_per_day"), "requests_per_day")
    tpd = _number(form.get("tokens_per_day"), "tokens_per_day")

    def work() -> str:
        page = page_of(request, project)
        info = PublishedApps(page.scope.client).publish(
            page.project,
            form.get("deployment") or "",
            slug=(form.get("slug") or "").strip() or None,
            title=form.get("title"),
            origins=origins,
            requests_per_day=rpd,
            tokens_per_day=tpd,
        )
        return page.hub.url("p", page.project, "apps") + f"#app-{info.slug}"

    target = await run_in_threadpool(work)
    return with_headers(RedirectResponse(target, status_code=303))


@router.post("/p/{project}/apps/{slug}/{action}", include_in_schema=False)
async def change(request: Request, project: str, slug: str, action: str) -> Response:
    """``unpublish`` (the link, widget and tokens stop at once) or ``revoke`` (the tokens
    handed out so far stop; pages must reload)."""
    session = session_of(request)
    form = await read_form(request)
    check_csrf(session, form.get("csrf"))

    def work() -> str:
        page = page_of(request, project)
        apps = PublishedApps(page.scope.client)
        if action == "unpublish":
            apps.unpublish(page.project, slug)
        elif action == "revoke":
            apps.revoke_tokens(page.project, slug)
        else:
            raise NotFoundError(f"no Hub page apps/{slug}/{action}")
        return page.hub.url("p", page.project, "apps")

    target = await run_in_threadpool(work)
    return with_headers(RedirectResponse(target, status_code=303))
