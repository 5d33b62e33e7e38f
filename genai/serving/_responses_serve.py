"""``genai serve``'s ``/v1/responses``: the Responses API over its own chat handler, with
the responses it answered kept in memory (the newest ``max_stored``), so that a request
may go on from one (``previous_response_id``), ``GET`` it or ``DELETE`` it."""

from __future__ import annotations

import json
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from genai.errors import ValidationError
from genai.serving._responses import ResponseNotFound, chat_request, response_param
from genai.serving._responses_http import Turn, answer_response
from genai.serving._responses_schema import ResponsesRequest, refuse_unsupported
from genai.serving._schemas import check_body

__all__ = ["MemoryResponses", "add_responses_routes"]

#: The server's chat path for one request: (the HTTP request, a chat body) → its answer.
ServeChat = Callable[[Request, dict[str, Any]], Awaitable[Response]]


class MemoryResponses:
    """The newest ``max_stored`` responses, each with its whole conversation (the items of
    the responses it goes on from, its input, its output: shared, not copied)."""

    def __init__(self, max_stored: int = 1000) -> None:
        self._max = max_stored
        self._kept: OrderedDict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._kept)

    def conversation(self, response_id: str) -> list[dict[str, Any]]:
        """The input and output items up to and including response ``response_id``."""
        return list(self._entry(response_id, previous=True)[1])

    def get(self, response_id: str) -> dict[str, Any]:
        return self._entry(response_id)[0]

    def delete(self, response_id: str) -> None:
        self._entry(response_id)
        del self._kept[response_id]

    async def save(self, items: list[dict[str, Any]], response: dict[str, Any]) -> None:
        previous = response.get("previous_response_id")
        before = (
            self._kept[previous][1] if isinstance(previous, str) and previous in self._kept else []
        )
        self._kept[response["id"]] = (response, [*before, *items, *response["output"]])
        while len(self._kept) > self._max:
            self._kept.popitem(last=False)

    def _entry(
        self, response_id: str, *, previous: bool = False
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        entry = self._kept.get(response_id)
        if entry is None:
            raise ResponseNotFound(response_id, previous=previous)
        return entry


def add_responses_routes(
    app: FastAPI, chat: ServeChat, *, max_body_bytes: int, max_stored: int = 1000
) -> MemoryResponses:
    """``POST /v1/responses``, ``GET`` and ``DELETE /v1/responses/{id}`` on ``app``; each
    answer comes from ``chat`` (the server's chat handler). Returns the store."""
    kept = MemoryResponses(max_stored)

    @app.post("/v1/responses", response_model=None)
    async def create_response(request: Request) -> Response:
        raw = await request.body()
        if len(raw) > max_body_bytes:
            raise ValidationError(
                f"the request body has {len(raw)} bytes; the limit is {max_body_bytes}"
            )
        body = checked(raw)
        previous = body.get("previous_response_id")
        history = kept.conversation(previous) if previous else []
        turn = Turn(body, suffix=uuid.uuid4().hex, created_at=int(time.time()))
        try:
            answer = await chat(request, chat_request(body, history))
        except ValidationError as error:  # the chat path's words for the chat request
            raise renamed(error) from None
        save = None if body.get("store") is False else kept.save
        return await answer_response(turn, answer, save)

    @app.get("/v1/responses/{response_id}", response_model=None)
    async def get_response(response_id: str) -> Response:
        return JSONResponse(kept.get(response_id))

    @app.delete("/v1/responses/{response_id}", response_model=None)
    async def delete_response(response_id: str) -> Response:
        kept.delete(response_id)
        return JSONResponse({"id": response_id, "object": "response.deleted", "deleted": True})

    return kept


def checked(raw: bytes) -> dict[str, Any]:
    """The request body, checked (what OpenAI has and this server does not do is refused
    by name first)."""
    try:
        body = json.loads(raw or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValidationError(f"the request body is not valid JSON: {error}") from None
    if not isinstance(body, dict):
        raise ValidationError("the request body must be a JSON object")
    refuse_unsupported(body)
    check_body(body, ResponsesRequest)
    return body


def renamed(error: ValidationError) -> ValidationError:
    field = response_param(error.field)
    if field == error.field:
        return error
    message = f"{error.message} (from '{field}' of the Responses request)"
    return ValidationError(message, field=field)
