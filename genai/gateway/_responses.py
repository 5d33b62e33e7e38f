"""``/v1/responses`` at the gateway: OpenAI's Responses API for every deployment.

A request is checked, the conversation it goes on from (``previous_response_id``) is read
from the project's stored responses, and the whole is turned into a chat request
(:mod:`genai.serving._responses`) that takes the gateway's own chat path: auth, quotas,
request stages (DLP, prompts), cache, routing, retries and fallbacks, response stages and
the usage ledger, exactly as for ``/v1/chat/completions``. Its answer (or its stream) is
turned back into a Response, kept for the project unless the request says ``store:
false``, and sent. Targets that speak the Responses API themselves get it on their own
endpoint (``responses_api`` in the deployment spec; see :mod:`genai.gateway._responses_wire`).

Stored responses are the project's: another project's id is not found (404, worded as for
an id that never existed). Reading one back (``GET``/``DELETE /v1/responses/{id}``) needs
the right to call its deployment, as making it did.
"""

from __future__ import annotations

import asyncio
import os
import time
from functools import partial
from typing import Any

import orjson
from fastapi import FastAPI, Request
from sqlalchemy import and_, literal, select
from starlette.responses import Response

from genai.errors import GenAIError
from genai.gateway._checks import check_request
from genai.gateway._gateway import Gateway
from genai.gateway._http import bearer, json_body, unless_gone
from genai.gateway._openapi import error_responses, request_body
from genai.gateway._outcome import Outcome
from genai.serving._responses import ResponseNotFound, chat_request
from genai.serving._responses_http import Turn, answer_response
from genai.serving._responses_schema import (
    ResponseDeleted,
    ResponseObject,
    ResponsesRequest,
    refuse_unsupported,
)
from genai.store import Store
from genai.store import schema as t
from genai.tenancy import Action, Resource, authorize

__all__ = ["ResponseStore", "add_responses_routes"]

_CALLS = (400, 401, 403, 404, 413, 429, 502, 503)
#: The longest chain of previous_response_ids read back (a guard, far beyond real chats).
MAX_CHAIN = 10_000
_EVENTS = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"type": "string", "description": "The event's type, e.g. response.created."},
        "data": {
            "type": "string",
            "description": "The event as JSON: its type, sequence_number and fields; "
            "response.completed (or response.incomplete, response.failed) carries the whole "
            "response.",
        },
    },
}


class ResponseStore:
    """The projects' stored responses, in the platform's store (table ``responses``)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def save(
        self,
        project_id: int,
        deployment: str,
        items: list[dict[str, Any]],
        response: dict[str, Any],
    ) -> None:
        with self._store.session() as s:
            s.add(
                t.StoredResponse(
                    project_id=project_id,
                    response_id=response["id"],
                    previous_response_id=response.get("previous_response_id"),
                    deployment=deployment,
                    input=items,
                    response=response,
                )
            )

    def conversation(self, project_id: int, response_id: str) -> list[dict[str, Any]]:
        """The input and output items of response ``response_id`` and of the responses it
        goes on from, oldest first; a :class:`ResponseNotFound` when the project has none
        by that id."""
        r = t.StoredResponse
        chain = (
            select(r.id, r.previous_response_id, literal(0).label("depth"))
            .where(r.project_id == project_id, r.response_id == response_id)
            .cte("chain", recursive=True)
        )
        step = (
            select(r.id, r.previous_response_id, chain.c.depth + 1)
            .join(chain, and_(r.response_id == chain.c.previous_response_id))
            .where(r.project_id == project_id, chain.c.depth < MAX_CHAIN)
        )
        chain = chain.union_all(step)
        query = select(r.input, r.response).join(chain, r.id == chain.c.id)
        with self._store.session() as s:
            rows = s.execute(query.order_by(chain.c.depth.desc())).all()
        if not rows:
            raise ResponseNotFound(response_id, previous=True)
        items: list[dict[str, Any]] = []
        for given, response in rows:
            items.extend(given)
            items.extend(response.get("output") or [])
        return items

    def get(self, project_id: int, response_id: str) -> tuple[str, dict[str, Any]]:
        """The deployment and the response object of one stored response."""
        with self._store.session() as s:
            row = s.execute(self._one(project_id, response_id)).first()
        if row is None:
            raise ResponseNotFound(response_id)
        return row.deployment, row.response

    def delete(self, project_id: int, response_id: str, may: Any) -> None:
        """Delete a stored response once ``may(deployment)`` allows it (or raises)."""
        r = t.StoredResponse
        with self._store.session() as s:
            row = s.scalars(
                select(r).where(r.project_id == project_id, r.response_id == response_id)
            ).first()
            if row is None:
                raise ResponseNotFound(response_id)
            may(row.deployment)
            s.delete(row)

    @staticmethod
    def _one(project_id: int, response_id: str) -> Any:
        r = t.StoredResponse
        return select(r.deployment, r.response).where(
            r.project_id == project_id, r.response_id == response_id
        )


class ResponsesEndpoint:
    """The handlers of ``/v1/responses``; one per gateway app."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.kept = ResponseStore(gateway.store)

    async def create(self, http: Request) -> Response:
        g = self.gateway
        started = time.perf_counter()
        rid = os.urandom(12).hex()
        try:
            caller = await g.caller(bearer(http))
            body = await json_body(http, g.options.max_body_bytes)
            check_responses(body)
            previous = body.get("previous_response_id")
            history = []
            if previous is not None:
                history = await asyncio.to_thread(
                    self.kept.conversation, caller.project_id, previous
                )
            chat = chat_request(body, history)
        except GenAIError as error:
            return g.books.refuse(error, rid, "responses", None, Outcome(), started)
        turn = Turn(body, suffix=rid, created_at=int(time.time()))
        # the chat path itself (Gateway.handle after its key and body): every stage applies
        answer = await unless_gone(http, g._answer(http, "chat", caller, chat, rid, started))
        save = None
        if body.get("store") is not False:
            deployment = body["model"].partition(":")[0]
            save = partial(self._save, caller.project_id, deployment)
        return await answer_response(turn, answer, save)

    async def _save(
        self,
        project_id: int,
        deployment: str,
        items: list[dict[str, Any]],
        response: dict[str, Any],
    ) -> None:
        await asyncio.to_thread(self.kept.save, project_id, deployment, items, response)

    async def read(self, http: Request, response_id: str) -> Response:
        caller = await self.gateway.caller(bearer(http))
        deployment, response = await asyncio.to_thread(
            self.kept.get, caller.project_id, response_id
        )
        authorize(
            caller.principal,
            Action.MODEL_INVOKE,
            Resource("deployment", deployment, caller.project_id),
        )
        return Response(orjson.dumps(response), media_type="application/json")

    async def delete(self, http: Request, response_id: str) -> Response:
        caller = await self.gateway.caller(bearer(http))

        def may(deployment: str) -> None:
            resource = Resource("deployment", deployment, caller.project_id)
            authorize(caller.principal, Action.MODEL_INVOKE, resource)

        await asyncio.to_thread(self.kept.delete, caller.project_id, response_id, may)
        deleted = {"id": response_id, "object": "response.deleted", "deleted": True}
        return Response(orjson.dumps(deleted), media_type="application/json")


def check_responses(body: Any) -> None:
    """Check a Responses request as the gateway checks chat requests (OpenAI's words);
    what OpenAI has and the platform does not do is refused by name first."""
    if isinstance(body, dict):
        refuse_unsupported(body)
    check_request("responses", body)


def add_responses_routes(app: FastAPI, gateway: Gateway) -> ResponsesEndpoint:
    """``POST /v1/responses`` and ``GET``/``DELETE /v1/responses/{response_id}``."""
    endpoint = ResponsesEndpoint(gateway)
    created = {
        "model": ResponseObject,
        "description": "A ResponseObject. With stream=true: server-sent events (event: "
        "<type>, data: <json>) from response.created to response.completed.",
        "content": {"text/event-stream": {"schema": _EVENTS}},
    }

    @app.post(
        "/v1/responses",
        tags=["openai"],
        openapi_extra=request_body(ResponsesRequest),
        responses={200: created, **error_responses(*_CALLS)},
    )
    async def create_response(request: Request) -> Response:
        """OpenAI's Responses API over the deployment's chat path (every stage applies)."""
        return await endpoint.create(request)

    read_doc: dict[int | str, Any] = {
        200: {"model": ResponseObject, "description": "The stored response."},
        **error_responses(401, 403, 404),
    }

    @app.get(
        "/v1/responses/{response_id}",
        tags=["openai"],
        openapi_extra={"security": [{"bearer": []}]},
        responses=read_doc,
    )
    async def get_response(request: Request, response_id: str) -> Response:
        """A stored response of the project."""
        return await endpoint.read(request, response_id)

    @app.delete(
        "/v1/responses/{response_id}",
        tags=["openai"],
        openapi_extra={"security": [{"bearer": []}]},
        responses={
            200: {"model": ResponseDeleted, "description": "It is deleted."},
            **error_responses(400, 401, 403, 404),
        },
    )
    async def delete_response(request: Request, response_id: str) -> Response:
        """Delete a stored response of the project."""
        return await endpoint.delete(request, response_id)

    return endpoint
