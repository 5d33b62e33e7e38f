"""Who calls the admin API, and what every route shares: the caller's client, the project
it names (checked first, so an outsider learns nothing), and cache invalidation."""

from __future__ import annotations

import functools
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

import anyio.from_thread
from fastapi import Depends, Path, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from genai import Client, Context, Settings
from genai.errors import AuthenticationError, Forbidden, ValidationError, error_body
from genai.gateway import Gateway
from genai.store import Store
from genai.tenancy import KEY_PATTERN, Action, AsyncCounters, Counters

__all__ = ["AdminAPI", "Caller", "Operator", "Scope", "Scoped", "http_error", "invalid_request"]

T = TypeVar("T")

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="A project API key (`genai key create`), or the operator token "
    "(GENAI_ADMIN_TOKEN) for platform-wide operations.",
)


class LoopCounters:
    """The gateway's own (async) quota counters, read from a worker thread: quota status on
    ``/api`` shows what this gateway enforces (in-process, or shared through Redis)."""

    def __init__(self, counters: AsyncCounters) -> None:
        self._counters = counters

    def add(self, key: str, amount: int, *, limit: int | None, ttl_s: int) -> tuple[bool, int]:
        call = functools.partial(self._counters.add, key, amount, limit=limit, ttl_s=ttl_s)
        return anyio.from_thread.run(call)

    def get(self, key: str) -> int:
        return anyio.from_thread.run(self._counters.get, key)


class _ApiContext(Context):
    """A request's context: the gateway's store and counters, one caller."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        user: str | None,
        api_key: str | None,
        counters: Counters,
    ) -> None:
        super().__init__(settings, store, user=user, api_key=api_key)
        self._shared_counters = counters

    @property
    def counters(self) -> Counters:
        return self._shared_counters


@dataclass(frozen=True)
class Acting:
    """The caller of one request: a client over the services, and its context."""

    client: Client
    ctx: Context
    operator: bool
    # the project key the caller sent (None for the operator): what a route that calls the
    # gateway back as the caller (resuming a hosted agent's run) sends
    key: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Scope:
    """A project the caller may see, resolved before the route does anything."""

    acting: Acting
    project: str
    project_id: int
    api: AdminAPI

    @property
    def client(self) -> Client:
        return self.acting.client

    def require(self, action: Action) -> None:
        """Refuse now unless the caller may do ``action`` here (before checking any input)."""
        ctx = self.acting.ctx
        with ctx.store.session() as s:
            ctx.project(s, ctx.me(s), self.project, action)

    def run(self, work: Callable[[], T], *, callers: bool = False, routes: bool = False) -> T:
        """``work()``, then drop this project's cached callers and/or routes."""
        result = work()
        self.api.invalidate(self.project_id, callers=callers, routes=routes)
        return result


class AdminAPI:
    """The admin API's state: the gateway it manages and the operator token."""

    def __init__(self, gateway: Gateway, settings: Settings) -> None:
        self.gateway = gateway
        self.settings = settings
        self.counters = LoopCounters(gateway.quota.counters)
        token = settings.admin_token
        self._token = token.get_secret_value().encode() if token else None

    # ------------------------------------------------------------ identity

    def caller(self, credentials: HTTPAuthorizationCredentials | None) -> Acting:
        """A project key's principal, or the operator (the platform admin user)."""
        given = _given(credentials)
        if self._is_operator(given):
            return self._acting(user=self.settings.user, api_key=None)
        if not KEY_PATTERN.match(given):
            raise AuthenticationError(
                "the bearer credential is neither a project API key (gk_…, from `genai key "
                "create`) nor the operator token (GENAI_ADMIN_TOKEN)"
            )
        return self._acting(user=None, api_key=given)

    def operator(self, credentials: HTTPAuthorizationCredentials | None) -> Acting:
        """The operator, for platform-wide operations; 403 while no token is configured."""
        if self._token is None:
            raise Forbidden(
                "platform-wide admin operations are off on this gateway: set GENAI_ADMIN_TOKEN "
                "where it runs, and send the token as 'Authorization: Bearer <token>'"
            )
        given = _given(credentials)
        if self._is_operator(given):
            return self._acting(user=self.settings.user, api_key=None)
        if KEY_PATTERN.match(given):
            raise Forbidden(
                "a project API key acts inside its project; this operation spans the platform "
                "and needs the operator token (GENAI_ADMIN_TOKEN)"
            )
        raise AuthenticationError("wrong operator token: send GENAI_ADMIN_TOKEN's value")

    def scope(self, project: str, acting: Acting) -> Scope:
        """``project`` once the caller may see it: a 404 the same as for no such project."""
        ctx = acting.ctx
        with ctx.store.session() as s:
            row = ctx.project(s, ctx.me(s), project, Action.PROJECT_READ)
            return Scope(acting, row.name, row.id, self)

    def _is_operator(self, given: str) -> bool:
        return self._token is not None and hmac.compare_digest(given.encode(), self._token)

    def _acting(self, *, user: str | None, api_key: str | None) -> Acting:
        ctx = _ApiContext(
            self.settings,
            self.gateway.store,
            user=user,
            api_key=api_key,
            counters=self.counters,
        )
        return Acting(Client(ctx), ctx, operator=user is not None, key=api_key)

    # ------------------------------------------------------------ caches

    def invalidate(self, project_id: int, *, callers: bool = False, routes: bool = False) -> None:
        """Drop what this gateway cached of the project (on its event loop): a changed key,
        member, quota or deployment takes effect with the next request."""

        anyio.from_thread.run_sync(
            lambda: self.gateway.invalidate(project_id, callers=callers, routes=routes)
        )


def _given(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or not credentials.credentials.strip():
        raise AuthenticationError(
            "no credentials: send 'Authorization: Bearer <key>' with a project key from "
            "`genai key create` (or the operator token, GENAI_ADMIN_TOKEN)"
        )
    return credentials.credentials.strip()


def _api(request: Request) -> AdminAPI:
    api: AdminAPI = request.app.state.admin
    return api


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _caller(request: Request, credentials: Credentials) -> Acting:
    return _api(request).caller(credentials)


def _operator(request: Request, credentials: Credentials) -> Acting:
    return _api(request).operator(credentials)


def _scope(
    request: Request,
    project: Annotated[str, Path(description="The AI Project's name.")],
    acting: Annotated[Acting, Depends(_caller)],
) -> Scope:
    return _api(request).scope(project, acting)


#: A project key's principal or the operator.
Caller = Annotated[Acting, Depends(_caller)]
#: The operator only (platform-wide operations).
Operator = Annotated[Acting, Depends(_operator)]
#: The project of the path, once the caller may see it.
Scoped = Annotated[Scope, Depends(_scope)]


async def invalid_request(_: Request, error: Any) -> JSONResponse:
    """A malformed body or parameter: 400 with the OpenAI-style body naming the field."""
    assert isinstance(error, RequestValidationError)
    first = error.errors()[0] if error.errors() else {"loc": (), "msg": "invalid request"}
    where = ".".join(str(p) for p in first["loc"] if p not in ("body", "query", "path"))
    said = str(first["msg"]).removeprefix("Value error, ")  # a converter's own words
    message = f"invalid request at {where or 'body'}: {said}"
    return JSONResponse(error_body(ValidationError(message, field=where or None)), status_code=400)


async def http_error(request: Request, error: Any, fallback: Any = None) -> Response:
    """No such ``/api`` route (or method): the OpenAI-style body too; other paths as the
    app answered them before (``fallback``, its handler; FastAPI's without one)."""
    assert isinstance(error, HTTPException)
    if not request.url.path.startswith("/api/"):
        answered: Response = await (fallback or http_exception_handler)(request, error)
        return answered
    status = error.status_code
    body = {
        "error": {
            "message": f"{request.method} {request.url.path}: {error.detail} "
            "(the admin API is described at /docs)",
            "type": "invalid_request_error" if status < 500 else "server_error",
            "param": None,
            "code": "not_found" if status == 404 else f"http_{status}",
        }
    }
    return JSONResponse(body, status_code=status, headers=error.headers)
