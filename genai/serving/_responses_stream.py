"""A chat completion's stream (SSE ``data:`` chunks) as the Responses API streams it:
``response.created``, ``response.in_progress``, each output item added, its content part
added, its text (or function-call arguments) in deltas and done, the item done, and
``response.completed`` (or ``response.incomplete``) carrying the whole response with its
usage. Every event has its ``type`` and ``sequence_number`` and goes out as
``event: <type>`` / ``data: <json>``, as OpenAI sends them (no ``[DONE]``).

A chat stream that fails (an error event, or an end before ``[DONE]``) ends with an
``error`` event and ``response.failed``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from genai.serving._responses import finish_status, output_text, usage_of

__all__ = ["ResponsesStream"]


@dataclass
class _Item:
    index: int  # output_index
    body: dict[str, Any]
    open: bool = True
    parts: dict[str, int] = field(default_factory=dict)  # "text" / "refusal" → content_index


class ResponsesStream:
    """Feed it a chat stream's bytes; it gives back the Responses events to send.

    ``base`` is the response before its output (:func:`genai.serving._responses.skeleton`);
    ``suffix`` makes the item ids (``msg_<suffix>``, ``fc_<suffix>_<n>``). Once the stream
    has ended, :attr:`final` is the whole response (status completed, incomplete or failed).
    """

    def __init__(self, base: dict[str, Any], *, suffix: str) -> None:
        self._response = dict(base)
        self._suffix = suffix
        self._seq = 0
        self._buffer = b""
        self._items: list[_Item] = []
        self._message: _Item | None = None  # the message item text goes to
        self._calls: dict[int, _Item] = {}  # a chat tool call's index → its item
        self._finish: str | None = None
        self._usage: Any = None
        self._messages = 0
        self.final: dict[str, Any] | None = None

    @property
    def done(self) -> bool:
        return self.final is not None

    def start(self) -> list[bytes]:
        """``response.created`` and ``response.in_progress``."""
        return [
            self._event("response.created", response=self._snapshot()),
            self._event("response.in_progress", response=self._snapshot()),
        ]

    def feed(self, data: bytes) -> list[bytes]:
        """The events for the next bytes of the chat stream."""
        self._buffer += data.replace(b"\r\n", b"\n")
        out: list[bytes] = []
        while not self.done:
            end = self._buffer.find(b"\n\n")
            if end < 0:
                break
            event, self._buffer = self._buffer[:end], self._buffer[end + 2 :]
            lines = [line[5:].strip() for line in event.split(b"\n") if line.startswith(b"data:")]
            if lines:
                out.extend(self._data(b"\n".join(lines)))
        return out

    def end(self) -> list[bytes]:
        """The events owed when the chat stream has ended: a failure, unless it finished."""
        if self.done:
            return []
        return self._fail("the answer's stream ended before it was complete", "stream_ended")

    # ------------------------------------------------------------ chat chunks

    def _data(self, payload: bytes) -> list[bytes]:
        if payload == b"[DONE]":
            return self._complete()
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return self._fail("the answer's stream sent an event that is not JSON", "bad_event")
        if not isinstance(chunk, dict):
            return []
        if "error" in chunk:
            error = chunk["error"]
            if not isinstance(error, dict):
                error = {"message": str(error)}
            return self._fail(
                str(error.get("message") or "the answer's stream failed"),
                str(error.get("code") or "server_error"),
                error.get("param"),
            )
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        out: list[bytes] = []
        for choice in chunk.get("choices") or []:
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                out.extend(self._choice(choice))
        return out

    def _choice(self, choice: dict[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        delta = choice.get("delta") or {}
        logprobs = (choice.get("logprobs") or {}).get("content") or []
        if isinstance(delta.get("content"), str) and delta["content"]:
            out.extend(self._text("text", delta["content"], logprobs))
        if isinstance(delta.get("refusal"), str) and delta["refusal"]:
            out.extend(self._text("refusal", delta["refusal"], []))
        for call in delta.get("tool_calls") or []:
            if isinstance(call, dict):
                out.extend(self._call(call))
        if choice.get("finish_reason"):
            self._finish = choice["finish_reason"]
        return out

    def _text(self, kind: str, text: str, logprobs: list[Any]) -> list[bytes]:
        out: list[bytes] = []
        item = self._message
        if item is None or not item.open:
            out.extend(self._close_all())
            item = self._message = self._open_message(out)
        if kind not in item.parts:
            part = output_text("") if kind == "text" else {"type": "refusal", "refusal": ""}
            item.parts[kind] = len(item.body["content"])
            item.body["content"].append(part)
            out.append(
                self._event(
                    "response.content_part.added",
                    item_id=item.body["id"],
                    output_index=item.index,
                    content_index=item.parts[kind],
                    part=dict(part),
                )
            )
        index = item.parts[kind]
        part = item.body["content"][index]
        if kind == "text":
            part["text"] += text
            part["logprobs"].extend(logprobs)
            name, extra = "response.output_text.delta", {"logprobs": logprobs}
        else:
            part["refusal"] += text
            name, extra = "response.refusal.delta", {}
        out.append(
            self._event(
                name,
                item_id=item.body["id"],
                output_index=item.index,
                content_index=index,
                delta=text,
                **extra,
            )
        )
        return out

    def _open_message(self, out: list[bytes]) -> _Item:
        suffix = self._suffix if not self._messages else f"{self._suffix}_{self._messages}"
        self._messages += 1
        body = {
            "id": f"msg_{suffix}",
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        return self._add(body, out)

    def _call(self, call: dict[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        index = call.get("index", 0) if isinstance(call.get("index", 0), int) else 0
        given = call.get("function")
        function: dict[str, Any] = given if isinstance(given, dict) else {}
        item = self._calls.get(index)
        if item is None:
            out.extend(self._close_all())
            n = len(self._calls)
            body = {
                "id": f"fc_{self._suffix}_{n}",
                "type": "function_call",
                "status": "in_progress",
                "call_id": call.get("id") or f"call_{self._suffix}_{n}",
                "name": function.get("name") or "",
                "arguments": "",
            }
            item = self._calls[index] = self._add(body, out)
        elif function.get("name") and not item.body["name"]:
            item.body["name"] = function["name"]
        pieces = function.get("arguments")
        if isinstance(pieces, str) and pieces:
            item.body["arguments"] += pieces
            out.append(
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=item.body["id"],
                    output_index=item.index,
                    delta=pieces,
                )
            )
        return out

    def _add(self, body: dict[str, Any], out: list[bytes]) -> _Item:
        item = _Item(index=len(self._items), body=body)
        self._items.append(item)
        out.append(
            self._event("response.output_item.added", output_index=item.index, item=_copy(body))
        )
        return item

    # ------------------------------------------------------------ the end

    def _close_all(self) -> list[bytes]:
        out: list[bytes] = []
        for item in self._items:
            if item.open:
                out.extend(self._close(item))
        return out

    def _close(self, item: _Item) -> list[bytes]:
        item.open = False
        status, _ = finish_status(self._finish)
        body = item.body
        body["status"] = "incomplete" if status == "incomplete" else "completed"
        where = {"item_id": body["id"], "output_index": item.index}
        out: list[bytes] = []
        if body["type"] == "function_call":
            body["status"] = "completed"
            out.append(
                self._event(
                    "response.function_call_arguments.done",
                    **where,
                    name=body["name"],
                    arguments=body["arguments"],
                )
            )
        for index, part in enumerate(body.get("content") or []):
            if part["type"] == "output_text":
                done = {"text": part["text"], "logprobs": part["logprobs"]}
                out.append(
                    self._event("response.output_text.done", **where, content_index=index, **done)
                )
            else:
                out.append(
                    self._event(
                        "response.refusal.done",
                        **where,
                        content_index=index,
                        refusal=part["refusal"],
                    )
                )
            out.append(
                self._event(
                    "response.content_part.done", **where, content_index=index, part=_copy(part)
                )
            )
        ended = self._event("response.output_item.done", output_index=item.index, item=_copy(body))
        out.append(ended)
        return out

    def _complete(self) -> list[bytes]:
        out: list[bytes] = []
        if not self._items:  # an empty answer is an empty message, as when not streamed
            self._message = self._open_message(out)
            out.extend(self._text_part_only())
        out.extend(self._close_all())
        status, incomplete = finish_status(self._finish)
        self.final = {
            **self._snapshot(),
            "status": status,
            "incomplete_details": incomplete,
            "usage": usage_of(self._usage),
        }
        if status == "completed":
            self.final["completed_at"] = int(time.time())
        name = "response.completed" if status == "completed" else "response.incomplete"
        out.append(self._event(name, response=self.final))
        return out

    def _text_part_only(self) -> list[bytes]:
        assert self._message is not None
        item = self._message
        item.parts["text"] = 0
        item.body["content"].append(output_text(""))
        return [
            self._event(
                "response.content_part.added",
                item_id=item.body["id"],
                output_index=item.index,
                content_index=0,
                part=output_text(""),
            )
        ]

    def _fail(self, message: str, code: str, param: Any = None) -> list[bytes]:
        out = [self._event("error", code=code, message=message, param=param)]
        for item in self._items:
            item.open = False
            item.body["status"] = "incomplete"
        self.final = {
            **self._snapshot(),
            "status": "failed",
            "error": {"code": "server_error", "message": message},
            "usage": usage_of(self._usage),
        }
        out.append(self._event("response.failed", response=self.final))
        return out

    def _snapshot(self) -> dict[str, Any]:
        return {**self._response, "output": [_copy(item.body) for item in self._items]}

    def _event(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def _copy(body: dict[str, Any]) -> dict[str, Any]:
    """A snapshot of an item (its content list and parts copied: they grow afterwards)."""
    copied = dict(body)
    if "content" in copied:
        copied["content"] = [_part(p) for p in copied["content"]]
    return copied


def _part(part: dict[str, Any]) -> dict[str, Any]:
    if part.get("type") == "output_text":
        return dict(part, logprobs=list(part.get("logprobs") or []))
    return dict(part)
