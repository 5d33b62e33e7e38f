"""The gateway's HTTP app: OpenAI's API under ``/v1`` for every AI Project, the admin API
under ``/api``, ``/health`` and ``/metrics``; its OpenAPI document at ``/openapi.json``."""

from __future__ import annotations

import contextlib
import hmac
import logging
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from genai.errors import AuthenticationError, GenAIError, error_body, http_headers, http_status
from genai.gateway._endpoints import Endpoints
from genai.gateway._gateway import Gateway
from genai.gateway._http import ClientGone
from genai.gateway._openapi import answer, complete, error_responses, request_body
from genai.gateway._responses import add_responses_routes
from genai.gateway._schemas import (
    ChatCompletion,
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingList,
    EmbeddingRequest,
    FeedbackAck,
    FeedbackRequest,
    Health,
    ModelList,
    TextCompletion,
)
from genai.serving._v1_errors import install_v1_errors
from genai.settings import Settings

__all__ = ["GatewayApp", "create_gateway_app"]

_log = logging.getLogger("genai.gateway")
_CALLS = (400, 401, 403, 404, 413, 429, 502, 503)  # what a model call may be answered with


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
        return JSONResponse(
            error_body(error), status_code=http_status(error), headers=http_headers(error)
        )

    @app.exception_handler(ClientGone)
    async def _gone(request: Request, error: ClientGone) -> Response:
        return client_gone(request.scope, error)

    install_v1_errors(app)  # unknown paths, methods, unreadable bodies: OpenAI's shape too
    _openai_routes(app, gateway, extra)
    add_responses_routes(app, gateway)  # /v1/responses, over the chat path
    _operator_routes(app, gateway, settings)
    if admin is not None:
        admin(app, gateway)
    return app


def _openai_routes(app: FastAPI, gateway: Gateway, extra: Endpoints) -> None:
    """``/v1``. The two model routes are declared for the document only: GatewayApp sends
    their requests to the gateway before FastAPI sees them."""

    @app.post(
        "/v1/chat/completions",
        tags=["openai"],
        openapi_extra=request_body(ChatCompletionRequest),
        responses=answer(ChatCompletion, *_CALLS, stream=True),
    )
    async def chat(request: Request) -> Response:
        return await gateway.handle(request, "chat")

    @app.post(
        "/v1/completions",
        tags=["openai"],
        openapi_extra=request_body(CompletionRequest),
        responses=answer(TextCompletion, *_CALLS, stream=True),
    )
    async def completions(request: Request) -> Response:
        return await gateway.handle(request, "completions")

    @app.post(
        "/v1/embeddings",
        tags=["openai"],
        openapi_extra=request_body(EmbeddingRequest),
        responses=answer(EmbeddingList, *_CALLS),
    )
    async def embeddings(request: Request) -> Response:
        return await extra.embeddings(request)

    @app.get(
        "/v1/models",
        tags=["openai"],
        openapi_extra={"security": [{"bearer": []}]},
        responses=answer(ModelList, 401),
    )
    async def models(request: Request) -> Response:
        """The project's deployments (and their adapters, as ``name:adapter``)."""
        return await extra.models(request)

    @app.post(
        "/v1/feedback",
        tags=["openai"],
        openapi_extra=request_body(FeedbackRequest),
        responses=answer(FeedbackAck, 400, 401, 403, 404, 413),
    )
    async def feedback(request: Request) -> Response:
        """Rate an answer (by its response id); bandit deployments learn from it."""
        return await extra.feedback(request)


def _operator_routes(app: FastAPI, gateway: Gateway, settings: Settings) -> None:
    @app.get("/health", tags=["operations"])
    async def health() -> Health:
        return Health(status="ok", ledger_pending=gateway.ledger.pending)

    @app.get(
        "/metrics",
        tags=["operations"],
        response_class=PlainTextResponse,
        responses=error_responses(401),
        openapi_extra={"security": [{"bearer": []}]},
    )
    async def metrics(request: Request) -> Response:
        """Prometheus metrics (the operator token, GENAI_ADMIN_TOKEN, when one is set)."""
        _require_admin_token(request, settings)
        gateway.metrics.set_circuits(gateway.circuits.states())
        gateway.metrics.ledger_pending.set(gateway.ledger.pending)
        return Response(gateway.metrics.render(), media_type="text/plain; version=0.0.4")


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
        except ClientGone as gone:
            response = client_gone(scope, gone)
        except Exception as error:  # a bug: an OpenAI-shaped 500, never a bare traceback page
            _log.exception("unhandled error on %s", scope.get("path"))
            response = JSONResponse(
                error_body(GenAIError(f"internal error: {type(error).__name__}")), status_code=500
            )
        await response(scope, receive, send)

    def openapi(self) -> dict[str, Any]:
        """FastAPI's document, completed (see genai.gateway._openapi)."""
        if self.openapi_schema is None:
            handled = RequestValidationError in self.exception_handlers
            self.openapi_schema = complete(super().openapi(), validation_is_400=handled)
        return self.openapi_schema


def client_gone(scope: Any, gone: ClientGone) -> Response:
    """One INFO line for a client that left mid-body; the 499 (nginx's "client closed
    request") goes nowhere, but keeps access logs and servers from reading it as a crash."""
    headers = dict(scope.get("headers") or [])
    given = headers.get(b"x-request-id", b"").decode("latin-1")
    rid = given if given.isascii() and 0 < len(given) <= 64 else os.urandom(12).hex()
    _log.info(
        "request %s: %s %s: %s; nothing answered",
        rid,
        scope.get("method"),
        scope.get("path"),
        gone,
    )
    return Response(status_code=499, headers={"x-request-id": rid})


def _require_admin_token(request: Request, settings: Settings) -> None:
    """Operator endpoints need GENAI_ADMIN_TOKEN when one is set (they span projects)."""
    token = settings.admin_token.get_secret_value() if settings.admin_token else None
    if token is None:
        return
    given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise AuthenticationError("this endpoint needs the operator token (GENAI_ADMIN_TOKEN)")
