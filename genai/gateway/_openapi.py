"""The gateway's OpenAPI document: request and answer schemas of ``/v1`` from the models in
:mod:`genai.gateway._schemas`, and the error body on every error response of every route.

FastAPI documents what its routes declare. The model routes read their bodies themselves
(the gateway checks them against the same models, faster than FastAPI would), so their
request bodies are declared here with ``openapi_extra``; :func:`complete` then adds those
models to the document's components, gives each error response that lacks one the error
body's schema (so routers added by others get it too), and drops FastAPI's 422, which
this app never sends when bad parameters are answered with a 400.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from genai.gateway._schemas import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    ErrorBody,
    FeedbackRequest,
)
from genai.serving._responses_schema import ResponsesRequest

__all__ = ["answer", "complete", "error_responses", "request_body"]

_REF = "#/components/schemas/{model}"
_REQUESTS: tuple[type[BaseModel], ...] = (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    FeedbackRequest,
    ResponsesRequest,
    ErrorBody,
)

#: What each error status means, on ``/v1`` and ``/api`` alike (genai.errors' mapping).
ERRORS: dict[int, str] = {
    400: "The body or a parameter is malformed, or a policy (DLP) refuses the request: "
    "error.param names the field.",
    401: "No credential, or a bad, revoked or expired one.",
    403: "The caller's role may not do this (e.g. a viewer key calling a model).",
    404: "No such model, project or thing, or one the caller may not see (worded the same).",
    409: "It exists already, changed meanwhile, or a cap is reached (e.g. keys per project).",
    413: "The body is larger than this gateway takes.",
    429: "A quota or rate limit of the project is used up: retry after Retry-After.",
    502: "The deployment's targets failed, or answered with something that is not OpenAI's.",
    503: "Every target's circuit is open, or the store is unavailable: retry after Retry-After.",
}


#: One server-sent event of a stream (OpenAPI before 3.2: ``schema`` describes each event).
_EVENT = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "data": {
            "type": "string",
            "description": "A chunk as JSON (chat.completion.chunk, or text_completion), an "
            "error object ({error: {...}}) if the stream fails, or [DONE] at the end.",
        },
        "event": {"type": "string"},
    },
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route or router: each status with the error body's schema."""
    return {status: {"model": ErrorBody, "description": ERRORS[status]} for status in statuses}


def request_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra=`` declaring a JSON body of ``model`` (added by :func:`complete`)."""
    ref = {"$ref": _REF.format(model=model.__name__)}
    return {
        "requestBody": {"required": True, "content": {"application/json": {"schema": ref}}},
        "security": [{"bearer": []}],
    }


def answer(model: type[BaseModel], *statuses: int, stream: bool = False) -> dict[int | str, Any]:
    """``responses=`` of a ``/v1`` route: its answer (and its event stream) and its errors."""
    ok: dict[str, Any] = {"model": model, "description": f"A {model.__name__}."}
    if stream:
        ok["description"] += " With stream=true: server-sent events, ending with data: [DONE]."
        ok["content"] = {"text/event-stream": {"schema": _EVENT}}
    return {200: ok, **error_responses(*statuses)}


def complete(doc: dict[str, Any], *, validation_is_400: bool) -> dict[str, Any]:
    """Finish FastAPI's document in place (see the module's docstring); returns it."""
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    _, found = models_json_schema([(m, "validation") for m in _REQUESTS], ref_template=_REF)
    for name, schema in found.get("$defs", {}).items():
        schemas.setdefault(name, schema)
    components.setdefault("securitySchemes", {}).setdefault(
        "bearer", {"type": "http", "scheme": "bearer"}
    )
    error = {"application/json": {"schema": {"$ref": _REF.format(model="ErrorBody")}}}
    for operations in doc.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            if validation_is_400:
                responses.pop("422", None)
            for status, response in responses.items():
                if status[:1] in "45" and not response.get("content"):
                    response["content"] = error
    if validation_is_400:
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
    return doc
