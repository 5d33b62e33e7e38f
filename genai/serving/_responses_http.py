"""The Responses API's answer from a server's own chat answer (an HTTP response): the whole
Response object, or its event stream, sent as the chat answer is sent (headers kept).

Each server asks its chat path (``genai serve``'s handler, the gateway's pipeline) with the
request from :func:`~genai.serving._responses.chat_request`; what comes back is turned
around here, and handed to ``save`` (the server's store of responses) before the client
sees its end: a request that goes on from it (``previous_response_id``) finds it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from genai.serving._responses import input_items, response_object, response_param, skeleton
from genai.serving._responses_stream import ResponsesStream

__all__ = ["ChatAnswer", "SaveResponse", "Turn", "answer_response", "renamed_error"]

log = logging.getLogger("genai.responses")

#: A server's chat path: a chat request body → its HTTP answer (JSON, or an SSE stream).
ChatAnswer = Callable[[dict[str, Any]], Awaitable[Response]]
#: A server's store: keeps (this request's input items, the response) when it is done.
SaveResponse = Callable[[list[dict[str, Any]], dict[str, Any]], Awaitable[None]]


class Turn:
    """One Responses request on its way: the checked ``body``, the id its answer gets
    (``resp_<suffix>``), and when it was made (seconds since the epoch)."""

    def __init__(self, body: dict[str, Any], *, suffix: str, created_at: int) -> None:
        self.body = body
        self.suffix = suffix
        self.id = f"resp_{suffix}"
        self.base = skeleton(body, response_id=self.id, created_at=created_at)


async def answer_response(turn: Turn, answer: Response, save: SaveResponse | None) -> Response:
    """The Responses answer for the chat ``answer`` (a refusal passes, its ``param`` in the
    Responses request's words); ``save`` keeps the finished response (None: store false)."""
    if answer.status_code != 200:
        return renamed_error(answer)
    if turn.body.get("stream"):
        return TranslatedStream(answer, ResponsesStream(turn.base, suffix=turn.suffix), turn, save)
    payload = orjson.loads(bytes(answer.body))
    response = response_object(turn.base, payload, suffix=turn.suffix)
    if save is not None:
        await save(input_items(turn.body), response)
    return Response(
        orjson.dumps(response),
        status_code=200,
        headers=_kept_headers(answer),
        media_type="application/json",
    )


def renamed_error(answer: Response) -> Response:
    """An OpenAI-style error answer of the chat path, its ``param`` renamed to the field of
    the Responses request it came from; other answers as they are."""
    body = getattr(answer, "body", None)
    if not isinstance(body, bytes | memoryview) or not body:
        return answer
    try:
        payload = orjson.loads(bytes(body))
        error = payload["error"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return answer
    if not isinstance(error, dict):
        return answer
    param = error.get("param")
    renamed = response_param(param)
    if renamed == param:
        return answer
    error["param"] = renamed
    error["message"] = f"{error.get('message')} (from '{renamed}' of the Responses request)"
    return Response(
        orjson.dumps(payload),
        status_code=answer.status_code,
        headers=_kept_headers(answer),
        media_type="application/json",
    )


def _kept_headers(answer: Response) -> dict[str, str]:
    dropped = {"content-length", "content-type"}
    return {k: v for k, v in answer.headers.items() if k.lower() not in dropped}


class TranslatedStream(Response):
    """A chat stream's answer, sent as the Responses API's events: the inner response runs
    as it would (its background work, its held slots), each body piece translated on its
    way out; the finished response is saved before its last event leaves."""

    def __init__(
        self, inner: Response, events: ResponsesStream, turn: Turn, save: SaveResponse | None
    ) -> None:  # no Response.__init__: the inner response's status and headers are sent
        self._inner = inner
        self._events = events
        self._save = save
        self._turn = turn
        self.status_code = inner.status_code
        self.media_type = "text/event-stream"
        self.background = None
        self.raw_headers = inner.raw_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        events = self._events

        async def translated(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message["headers"] if k.lower() != b"content-length"]
                await send({**message, "headers": headers})
                await _body(send, events.start(), more=True)
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            more = bool(message.get("more_body", False))
            out = events.feed(bytes(message.get("body", b"")))
            if not more:
                out.extend(events.end())
            if events.final is not None and not saved:
                saved.append(True)
                await self._keep(events.final)
            await _body(send, out, more=more)

        saved: list[bool] = []
        await self._inner(scope, receive, translated)

    async def _keep(self, final: dict[str, Any]) -> None:
        if self._save is None or final.get("status") == "failed":
            return
        try:
            await self._save(input_items(self._turn.body), final)
        except Exception:  # the client still gets its answer; the log says it was not kept
            log.exception("response %s could not be stored", final.get("id"))


async def _body(send: Send, events: list[bytes], *, more: bool) -> None:
    if events or not more:
        await send({"type": "http.response.body", "body": b"".join(events), "more_body": more})
