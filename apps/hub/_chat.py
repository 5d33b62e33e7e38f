"""A chat page for every deployment of a project, answered by the gateway in process.

The browser posts the conversation to the Hub (same origin, the session cookie, the CSRF
token in a header); the Hub hands it to the gateway's own ``/v1/chat/completions`` handler
as the session's key, with ``stream: true``, and returns the gateway's server-sent events
as they come. The page never holds the key; quotas, DLP, the cache, knowledge bots'
citations and the usage ledger apply as to any API call.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from starlette.types import Message

from apps.hub._web import (
    SECURITY_HEADERS,
    HubState,
    call_gateway,
    check_csrf,
    page_of,
    render,
    session_of,
    state_of,
)
from genai.errors import PayloadTooLarge, ValidationError

__all__ = ["check_messages", "gateway_stream", "read_json", "router"]

router = APIRouter()
MAX_BODY_BYTES = 1024 * 1024
MAX_MESSAGES = 200
_ROLES = ("user", "assistant")


@router.get("/p/{project}/chat/{deployment}", include_in_schema=False)
def chat_page(request: Request, project: str, deployment: str) -> Response:
    page = page_of(request, project)
    revision = page.scope.client.registry.deployments.get(page.project, deployment)
    kinds = {str(t.get("backend", "")) for t in revision.spec.get("targets", [])}
    kind = next((k for k in ("knowledge-bot", "agent") if k in kinds), "model")
    return render(
        request,
        "chat.html",
        page=page,
        section="deployments",
        deployment=revision.name,
        kind=kind,
    )


@router.post("/p/{project}/chat/{deployment}", include_in_schema=False)
async def chat_send(request: Request, project: str, deployment: str) -> Response:
    """The gateway's streamed answer to ``{"messages": [...]}`` as the session's key."""
    hub = state_of(request)
    session = session_of(request)
    check_csrf(session, request.headers.get("x-csrf-token"))
    page = await run_in_threadpool(page_of, request, project)
    messages = check_messages(await read_json(request))
    body = {"model": deployment, "messages": messages, "stream": True}
    response = await gateway_stream(request, hub, page.session.key, body)
    response.headers.update(SECURITY_HEADERS)
    return response


async def gateway_stream(request: Request, hub: HubState, key: str, body: Any) -> Response:
    """The gateway's own ``/v1/chat/completions`` handler's answer to ``body`` as ``key``,
    streamed as it comes (the browser leaving cancels the work still to do)."""
    raw = json.dumps(body, ensure_ascii=False).encode("utf-8")
    scope = dict(request.scope)
    scope.update(
        path="/v1/chat/completions",
        raw_path=b"/v1/chat/completions",
        root_path="",
        query_string=b"",
        headers=[
            (b"authorization", f"Bearer {key}".encode("ascii")),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(raw)).encode("ascii")),
        ],
    )
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}
        message: Message = await request.receive()  # the browser leaving: http.disconnect
        return message

    return await hub.gateway.handle(Request(scope, receive), "chat")


async def read_json(request: Request) -> Any:
    """The request's JSON body (at most MAX_BODY_BYTES)."""
    raw = b""
    async for part in request.stream():
        raw += part
        if len(raw) > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"a chat request is at most {MAX_BODY_BYTES} bytes")
    try:
        return json.loads(raw)
    except ValueError:
        raise ValidationError("the body is not JSON", field="messages") from None


def check_messages(body: Any) -> list[dict[str, str]]:
    """``body["messages"]``: user and assistant turns of text, the last one the user's."""
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list) or not messages:
        raise ValidationError("give messages: a list of {role, content}", field="messages")
    if len(messages) > MAX_MESSAGES:
        raise ValidationError(
            f"a conversation here holds at most {MAX_MESSAGES} messages: start a new one",
            field="messages",
        )
    out = []
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        content = message.get("content") if isinstance(message, dict) else None
        if role not in _ROLES or not isinstance(content, str):
            raise ValidationError(
                f"messages[{i}] must be {{role: user|assistant, content: text}}",
                field=f"messages.{i}",
            )
        out.append({"role": str(role), "content": content})
    if out[-1]["role"] != "user":
        raise ValidationError("the last message must be the user's", field="messages")
    return out


@router.post("/p/{project}/feedback", include_in_schema=False)
async def feedback(request: Request, project: str) -> Response:
    """A thumb on one answer (``{"request_id", "rating": "up"|"down"}``), sent on to the
    gateway's ``/v1/feedback`` as the session's key (bandit deployments learn from it)."""
    hub = state_of(request)
    session = session_of(request)
    check_csrf(session, request.headers.get("x-csrf-token"))
    page = await run_in_threadpool(page_of, request, project)
    body = await read_json(request)
    given = body if isinstance(body, dict) else {}
    request_id, rating = given.get("request_id"), given.get("rating")
    if not isinstance(request_id, str) or not 0 < len(request_id) <= 64:
        raise ValidationError("give the answer's request_id", field="request_id")
    if rating not in ("up", "down"):
        raise ValidationError("rating is up or down", field="rating")
    status, answer = await call_gateway(
        hub, "/v1/feedback", page.session.key, {"request_id": request_id, "rating": rating}
    )
    return JSONResponse(answer, status_code=status, headers=SECURITY_HEADERS)
