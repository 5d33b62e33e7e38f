"""OpenAI's error shape for what the web framework answers by itself on ``/v1``: a path that
does not exist (404), a method a path does not take (405), a body or parameter FastAPI
could not read (422, answered as OpenAI's 400), and a bug (500, logged by the server as
before). Both servers install them; other paths keep FastAPI's own answers."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, PlainTextResponse, Response

from genai.errors import ValidationError, error_body

__all__ = ["http_error", "install_v1_errors", "invalid_request", "server_error"]

_TYPES = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}


def install_v1_errors(app: FastAPI) -> None:
    """Answer the framework's own refusals on ``/v1`` in OpenAI's error shape."""
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(Exception, server_error)


async def http_error(request: Request, error: Any) -> Response:
    """404 ``Invalid URL (POST /v1/nonexistent)``, 405 ``Invalid method for URL (...)``,
    as OpenAI words them; FastAPI's own answer off ``/v1``."""
    assert isinstance(error, HTTPException)
    if not _is_v1(request):
        return await http_exception_handler(request, error)
    status = error.status_code
    where = f"({request.method} {request.url.path})"
    if status == 404:
        message = f"Invalid URL {where}"
    elif status == 405:
        message = f"Invalid method for URL {where}"
    else:
        message = f"{error.detail} {where}"
    kind = _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return JSONResponse(body, status_code=status, headers=error.headers)


async def invalid_request(request: Request, error: Any) -> Response:
    """A body or parameter FastAPI could not read: OpenAI's 400, naming the field."""
    assert isinstance(error, RequestValidationError)
    errors = error.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    where = ".".join(str(p) for p in first["loc"] if p not in ("body", "query", "path", "header"))
    said = str(first["msg"]).removeprefix("Value error, ")
    message = f"invalid request at {where or 'body'}: {said}"
    return JSONResponse(error_body(ValidationError(message, field=where or None)), status_code=400)


async def server_error(request: Request, error: Exception) -> Response:
    """An unhandled error (a bug): OpenAI's 500 on ``/v1``; the server still logs it."""
    if not _is_v1(request):
        return PlainTextResponse("Internal Server Error", status_code=500)
    message = f"internal error: {type(error).__name__}"
    body = {"error": {"message": message, "type": "server_error", "param": None, "code": None}}
    return JSONResponse(body, status_code=500)


def _is_v1(request: Request) -> bool:
    path = request.url.path
    return path == "/v1" or path.startswith("/v1/")
