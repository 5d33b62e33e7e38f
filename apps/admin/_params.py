"""What the admin API reads from paths, query strings and bodies, read one way everywhere.

- Ids, versions and counts: ASCII digits only, within their range (ids 1 to 2**63-1, what
  the database holds), through :mod:`genai._ids`; anything else is a 400 naming the
  parameter. A well-formed id that names nothing stays the owner's 404.
- Numbers in bodies are strict: a boolean is not a number, ``"5"`` is not 5, and a count
  is not 2.5.
- Dates are ISO calendar dates (``2025-01-31``): ``0`` is not a date (FastAPI would read it
  as a Unix timestamp, 1970-01-01).
- Bodies are strict JSON: each key once per object (parsers disagree on which of two
  wins), and no NaN or Infinity.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

import orjson
from pydantic import BeforeValidator, Field, WithJsonSchema
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from genai.errors import ValidationError, error_body
from genai.gateway import error_responses, refuse_duplicate_keys
from genai.validation import MAX_ID, int_problem, iso_date

__all__ = [
    "ADMIN_ERRORS",
    "MAX_INT32",
    "Count32",
    "Id",
    "IsoDate",
    "ListLimit",
    "Money",
    "Positive32",
    "Positive64",
    "StrictJsonBodies",
]

MAX_INT32 = 2**31 - 1  # what the store's Integer columns hold (PostgreSQL's int4)

#: The errors every ``/api`` route may answer with (OpenAI's error body on each).
ADMIN_ERRORS = error_responses(400, 401, 403, 404, 409)


def _whole(low: int, high: int, *, text: bool) -> Any:
    """A check of a whole number: written in a path or query string (``text``), or a JSON
    number of a body (where ``"5"`` is text, not a number)."""

    def check(value: object) -> object:
        if isinstance(value, str) and not text:
            raise ValueError(f"must be a number, not text ({value!r})")
        problem = int_problem(value, low=low, high=high)
        if problem is not None:
            raise ValueError(problem)
        return int(value)  # type: ignore[call-overload]

    return check


# ---- in paths and query strings

#: An id or a version: 1 to 2**63-1.
Id = Annotated[int, Field(ge=1, le=MAX_ID), BeforeValidator(_whole(1, MAX_ID, text=True))]
#: How many entries a list may return.
ListLimit = Annotated[int, Field(ge=1, le=1000), BeforeValidator(_whole(1, 1000, text=True))]

# ---- in JSON bodies

#: A count the store keeps in a 64-bit column, from 1.
Positive64 = Annotated[int, Field(ge=1, le=MAX_ID), BeforeValidator(_whole(1, MAX_ID, text=False))]
#: A count the store keeps in a 32-bit column (limits per minute, slots), from 0.
Count32 = Annotated[
    int, Field(ge=0, le=MAX_INT32), BeforeValidator(_whole(0, MAX_INT32, text=False))
]
#: The same, from 1.
Positive32 = Annotated[
    int, Field(ge=1, le=MAX_INT32), BeforeValidator(_whole(1, MAX_INT32, text=False))
]
#: Money (or any amount): a finite number, never a boolean or text.
Money = Annotated[float, Field(strict=True, allow_inf_nan=False)]


def _iso(value: object) -> object:
    if isinstance(value, date):
        return value
    found = iso_date(value) if isinstance(value, str) else None
    if found is None:
        raise ValueError(f"must be a date written YYYY-MM-DD (e.g. 2025-01-31), not {value!r}")
    return found


#: A calendar date, YYYY-MM-DD only.
IsoDate = Annotated[
    date, BeforeValidator(_iso), WithJsonSchema({"type": "string", "format": "date"})
]


class StrictJsonBodies:
    """ASGI middleware: a JSON body sent to ``/api`` names each key once per object and
    holds no NaN or Infinity, or the request is a 400 before any route reads it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or not scope["path"].startswith("/api/")
            or scope["method"] not in ("POST", "PUT", "PATCH")
        ):
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        raw = b""
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            raw += message.get("body", b"")
            if not message.get("more_body", False):
                break
        problem = _problem(raw) if messages[-1]["type"] == "http.request" else None
        if problem is not None:
            await JSONResponse(error_body(problem), status_code=400)(scope, receive, send)
            return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


def _problem(raw: bytes) -> ValidationError | None:
    if not raw.strip():
        return None
    try:
        body = orjson.loads(raw)  # strict: no NaN, no Infinity, valid UTF-8
    except orjson.JSONDecodeError as error:
        return ValidationError(f"the request body is not valid JSON: {error}")
    try:
        refuse_duplicate_keys(raw, body)
    except ValidationError as error:
        return error
    return None
