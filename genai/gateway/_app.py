"""The gateway's HTTP app: OpenAI's API under ``/v1`` for every AI Project, the admin API
under ``/api``, ``/health`` and ``/metrics``."""

from __future__ import annotations

import contextlib
import hmac
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from genai.errors import AuthenticationError, GenAIError, error_body, http_status
from genai.gateway._endpoints import Endpoints
from genai.gateway._gateway import Gateway
from genai.settings import Settings

__all__ = ["GatewayApp", "create_gateway_app"]

_log = logging.getLogger("genai.gateway")


def create_gateway_app(
    gateway: Gateway,
    *,
    settings: Settings,
    embedder: Any = None,
    admin: Callable[[FastAPI, Gateway], None] | None = None,
) -> FastAPI:
    """The ASGI app. ``admin`` adds the ``/api`` routes (the gateway serves without them)."""
    extra = Endpoints(gateway, embedder=embedder, embedding_model=settings.embedding_model)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.close()

    app = GatewayApp(title="genai gateway", version="1", lifespan=lifespan)
    app.state.gateway = gateway
    app.state.settings = settings

    @app.exception_handler(GenAIError)
    async def _error(_: Request, error: GenAIError) -> JSONResponse:
        headers = {}
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            headers["retry-after"] = str(max(1, int(retry_after + 0.999)))
        return JSONResponse(error_body(error), status_code=http_status(error), headers=headers)

    @app.post("/v1/chat/completions", tags=["openai"])
    async def chat(request: Request) -> Response:
        return await gateway.handle(request, "chat")

    @app.post("/v1/completions", tags=["openai"])
    async def completions(request: Request) -> Response:
        return await gateway.handle(request, "completions")

    @app.post("/v1/embeddings", tags=["openai"])
    async def embeddings(request: Request) -> Response:
        return await extra.embeddings(request)

    @app.get("/v1/models", tags=["openai"])
    async def models(request: Request) -> Response:
        return await extra.models(request)

    @app.post("/v1/feedback", tags=["openai"])
    async def feedback(request: Request) -> Response:
        """Rate an answer (by its response id); bandit deployments learn from it."""
        return await extra.feedback(request)

    @app.get("/health", tags=["operations"])
    async def health() -> dict[str, Any]:
        return {"status": "ok", "ledger_pending": gateway.ledger.pending}

    @app.get("/metrics", tags=["operations"])
    async def metrics(request: Request) -> Response:
        _require_admin_token(request, settings)
        gateway.metrics.set_circuits(gateway.circuits.states())
        gateway.metrics.ledger_pending.set(gateway.ledger.pending)
        return Response(gateway.metrics.render(), media_type="text/plain; version=0.0.4")

    if admin is not None:
        admin(app, gateway)
    app.state.extra = extra
    return app


_HOT = {"/v1/chat/completions": "chat", "/v1/completions": "completions"}


class GatewayApp(FastAPI):
    """FastAPI, with the two hot routes dispatched straight to the gateway.

    Model calls skip FastAPI's per-route machinery (dependency solving, exit stacks,
    middleware): the gateway parses, checks and answers them itself. They stay declared
    as routes for the OpenAPI schema; everything else goes through FastAPI as usual.
    """

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        endpoint = _HOT.get(scope.get("path", "")) if scope["type"] == "http" else None
        if endpoint is None or scope["method"] != "POST":
            await super().__call__(scope, receive, send)
            return
        gateway: Gateway = self.state.gateway
        try:
            response = await gateway.handle(Request(scope, receive), endpoint)
        except Exception as error:  # a bug: an OpenAI-shaped 500, never a bare traceback page
            _log.exception("unhandled error on %s", scope.get("path"))
            response = JSONResponse(
                error_body(GenAIError(f"internal error: {type(error).__name__}")), status_code=500
            )
        await response(scope, receive, send)


def _require_admin_token(request: Request, settings: Settings) -> None:
    """Operator endpoints need GENAI_ADMIN_TOKEN when one is set (they span projects)."""
    token = settings.admin_token.get_secret_value() if settings.admin_token else None
    if token is None:
        return
    given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise AuthenticationError("this endpoint needs the operator token (GENAI_ADMIN_TOKEN)")
