"""The Hub alone (``genai hub serve``): the gateway's app with only ``/hub`` reachable.

The Hub does its work through the gateway's own code, in process: it resolves sessions with
the admin API's caller code, streams chats through the gateway's handler and posts feedback
to ``/v1/feedback`` over an in-process ASGI transport. So the standalone Hub is the gateway
app (same settings, database, stages and counters) behind a front door that answers only
the Hub's paths and ``/health``: ``/v1``, ``/api`` and ``/metrics`` are a 404 here. Run the
API with ``genai gateway`` where clients should reach it; both share the database, the
secret key (sessions and sign-in links work on either) and, with ``GENAI_REDIS_URL``, the
counters.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from apps.hub import HUB_PREFIX

__all__ = ["HubOnly", "create_hub_app"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class HubOnly:
    """An ASGI app passing the lifespan, ``/health`` and ``prefix`` to ``app``; ``/`` is
    sent to the Hub, and anything else is a plain 404."""

    def __init__(self, app: ASGIApp, *, prefix: str = HUB_PREFIX) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        if path in ("/health", self.prefix) or path.startswith(self.prefix + "/"):
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":  # a websocket elsewhere: refused
            await send({"type": "websocket.close", "code": 1008})
            return
        if path == "/":
            await _answer(send, 307, b"", [(b"location", (self.prefix + "/").encode())])
            return
        body = b"not found: this process serves the Hub only, at " + self.prefix.encode() + b"/"
        await _answer(send, 404, body, [(b"content-type", b"text/plain; charset=utf-8")])


async def _answer(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def create_hub_app() -> HubOnly:
    """What ``genai hub serve`` runs (one call per worker): the gateway's app from
    ``GENAI_*`` variables, only the Hub reachable."""
    from apps.gateway import create_app

    return HubOnly(create_app())
