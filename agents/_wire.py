"""Tolerant parsing of what OpenAI-compatible servers send: :func:`parse_message` for a whole
chat completion, :class:`StreamAssembler` for a stream of chunks, both giving a
:class:`ModelTurn` (the text, the tool calls, the finish reason and the token counts).

The OpenAI wire format is followed loosely in the wild, and an agent loop must not fall over
because a server streams it its own way. The assembler copes with the quirks seen in vLLM,
Ollama, Mistral, llama.cpp and others:

- argument deltas split anywhere (inside a JSON string, between a surrogate pair);
- parallel calls by ``index``; chunks without ``index``, where a delta with a new ``id`` or a
  ``name`` starts a call and one without continues the last; the same ``id`` repeated on
  every chunk of a call; several calls sent under one ``index`` with different ids;
- arguments sent whole and then repeated in full in a final chunk (not doubled);
- two calls' arguments run together under one index, ``{"a": 1}{"b": 2}`` (adk-python#665,
  pydantic-ai#1414): split into calls of the same tool, ids ``<id>_2``, ``<id>_3``, …;
- arguments given as a JSON object instead of a string; missing or empty ids (a stable
  ``call_<12 hex>`` is derived from the turn, the position, the name and the arguments, so a
  replayed turn gets the same ids and side-effecting tools still run once per call);
- ``usage`` in a last chunk with empty ``choices``; ``finish_reason`` "stop" on a turn that
  has tool calls (the turn's ``tool_calls`` decide what happens next, not the reason).

Bad model output never raises here: arguments that stay invalid JSON are kept as the raw text
(``ToolCallRequest.parsed()`` is then ``None``) and the engine answers the model with an
``invalid_arguments`` tool error so it can retry.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from genai.errors import ValidationError

__all__ = ["ModelTurn", "StreamAssembler", "ToolCallRequest", "parse_message"]


@dataclass(frozen=True)
class ToolCallRequest:
    """One tool call the model asked for; ``arguments`` is the raw JSON text, as assembled."""

    id: str
    name: str
    arguments: str

    def parsed(self) -> dict[str, Any] | None:
        """The arguments as an object (``{}`` for empty text); ``None`` when not an object."""
        if not self.arguments.strip():
            return {}
        try:
            value = json.loads(self.arguments)
        except (ValueError, RecursionError):
            return None
        return value if isinstance(value, dict) else None


@dataclass(frozen=True)
class ModelTurn:
    """One assistant turn: its text, its tool calls, why it ended and what it cost."""

    text: str
    tool_calls: tuple[ToolCallRequest, ...]
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int

    def assistant_message(self) -> dict[str, Any]:
        """The OpenAI assistant message to append to the conversation."""
        message: dict[str, Any] = {"role": "assistant", "content": self.text or None}
        if self.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in self.tool_calls
            ]
        return message


def parse_message(response: Mapping[str, Any] | str | bytes, *, turn: int = 0) -> ModelTurn:
    """Parse a non-streamed chat completion: a mapping (the SDK's ``model_dump()``), an SDK
    object, or the raw JSON body. ``turn`` (the turn's index in the run) seeds the ids
    derived for calls that came without one. Only the first choice is read."""
    body = _body(response)
    choice = _first_choice(body.get("choices"))
    message = _mapping(choice.get("message"))
    raw: list[_Partial] = []
    for position, call in enumerate(_calls_in(message)):
        function = _mapping(call.get("function"))
        raw.append(
            _Partial(
                key=position,
                id=_str(call.get("id")),
                name=_str(function.get("name")),
                arguments=_arguments_text(function.get("arguments")),
            )
        )
    prompt, completion = _usage(body.get("usage"))
    return ModelTurn(
        text=_join_surrogates(_content_text(message.get("content"))),
        tool_calls=_finish_calls(raw, turn),
        finish_reason=_optional_str(choice.get("finish_reason")),
        prompt_tokens=prompt or 0,
        completion_tokens=completion or 0,
    )


@dataclass
class _Partial:
    key: int | None  # the server's index; None for servers that send none
    id: str = ""
    name: str = ""
    arguments: str = ""


class StreamAssembler:
    """Assemble streamed chat-completion chunks into a :class:`ModelTurn`.

    Feed each chunk (a mapping, as ``chunk.model_dump()`` gives, or an SDK object) to
    :meth:`add`, which returns the chunk's text delta so the caller can stream it on; then
    call :meth:`finish`. ``turn`` seeds the ids derived for calls that came without one.
    """

    def __init__(self, *, turn: int = 0) -> None:
        self._turn = turn
        self._text: list[str] = []
        self._held = ""  # a high surrogate waiting for its pair in the next delta
        self._calls: list[_Partial] = []
        self._by_index: dict[int, _Partial] = {}
        self._finish_reason: str | None = None
        self._prompt_tokens: int | None = None
        self._completion_tokens: int | None = None

    def add(self, chunk: Mapping[str, Any]) -> str:
        """Take one chunk; return its text delta ("" when it has none)."""
        body = _mapping(_dumped(chunk))
        prompt, completion = _usage(body.get("usage"))
        self._prompt_tokens = self._prompt_tokens if prompt is None else prompt
        self._completion_tokens = self._completion_tokens if completion is None else completion
        choices = body.get("choices")
        if not isinstance(choices, list):
            return ""
        text = ""
        for choice in map(_mapping, choices):
            if choice.get("index") not in (None, 0):
                continue  # n > 1 is not supported: the first choice is the turn
            delta = _mapping(choice.get("delta") or choice.get("message"))
            text += _content_text(delta.get("content"))
            for call in _calls_in(delta):
                self._add_call(call)
            reason = _optional_str(choice.get("finish_reason"))
            self._finish_reason = reason or self._finish_reason
        text, self._held = _hold_surrogate(self._held + text)
        self._text.append(text)
        return text

    def finish(self) -> ModelTurn:
        """The turn as assembled so far (call it once the stream has ended)."""
        return ModelTurn(
            text=_join_surrogates("".join(self._text) + self._held),
            tool_calls=_finish_calls(self._calls, self._turn),
            finish_reason=self._finish_reason,
            prompt_tokens=self._prompt_tokens or 0,
            completion_tokens=self._completion_tokens or 0,
        )

    def _add_call(self, delta: Mapping[str, Any]) -> None:
        index = delta.get("index")
        key = index if isinstance(index, int) and not isinstance(index, bool) else None
        call_id = _str(delta.get("id"))
        function = _mapping(delta.get("function"))
        name = _str(function.get("name"))
        arguments = _arguments_text(function.get("arguments"))
        last = self._calls[-1] if self._calls else None
        current = self._by_index.get(key) if key is not None else last
        if current is None or self._starts_new_call(current, call_id, name, arguments):
            current = _Partial(key=key)
            self._calls.append(current)
            if key is not None:
                self._by_index[key] = current
        current.id = current.id or call_id
        current.name = current.name or name
        if arguments and not (arguments == current.arguments and _is_whole_json(arguments)):
            current.arguments += arguments  # (a whole repeat of what came is not doubled)

    @staticmethod
    def _starts_new_call(current: _Partial, call_id: str, name: str, arguments: str) -> bool:
        if call_id and current.id:
            return call_id != current.id  # the same id on every chunk continues the call
        if call_id and current.key is None:
            return _is_whole_json(current.arguments)  # an id after an id-less, finished call
        if name and current.name and name != current.name:
            return True
        if name and current.key is None and not call_id:
            # A name without index or id starts a call, unless it repeats the current
            # call's name while that call is still unfinished (or is being repeated whole).
            repeat = arguments == current.arguments and _is_whole_json(arguments)
            return name == current.name and _is_whole_json(current.arguments) and not repeat
        return False


# --- helpers -------------------------------------------------------------------------------


def _finish_calls(partials: list[_Partial], turn: int) -> tuple[ToolCallRequest, ...]:
    """Split run-together argument objects, derive missing ids, make ids unique in the turn."""
    calls: list[ToolCallRequest] = []
    seen: set[str] = set()
    for partial in partials:
        if not partial.name and not partial.arguments.strip():
            continue  # an empty delta, not a call
        pieces = _split_objects(partial.arguments)
        base_id = partial.id or _derived_id(turn, len(calls), partial.name, partial.arguments)
        for number, arguments in enumerate(pieces, start=1):
            call_id = base_id if number == 1 else f"{base_id}_{number}"
            while call_id in seen:
                call_id = f"{call_id}_{len(calls) + 1}"
            seen.add(call_id)
            calls.append(ToolCallRequest(call_id, partial.name, _join_surrogates(arguments)))
    return tuple(calls)


def _derived_id(turn: int, position: int, name: str, arguments: str) -> str:
    seed = json.dumps([turn, position, name, arguments], ensure_ascii=True)
    return "call_" + hashlib.sha256(seed.encode()).hexdigest()[:12]


def _split_objects(text: str) -> list[str]:
    """``{"a": 1}{"b": 2}`` → two texts; anything else (one value, invalid JSON) → as is."""
    decoder = json.JSONDecoder()
    pieces: list[str] = []
    position, end = 0, len(text)
    try:
        while True:
            while position < end and text[position].isspace():
                position += 1
            if position == end:
                break
            value, stop = decoder.raw_decode(text, position)
            if not isinstance(value, dict):
                return [text]
            pieces.append(text[position:stop])
            position = stop
    except (ValueError, RecursionError):
        return [text]
    return pieces if len(pieces) > 1 else [text]


def _is_whole_json(text: str) -> bool:
    if not text.strip():
        return False
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


def _arguments_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)


def _content_text(content: Any) -> str:
    """Text content, also the list-of-parts form (``[{"type": "text", "text": ...}]``)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            _str(part.get("text")) if isinstance(part, Mapping) else _str(part) for part in content
        )
    return ""


def _calls_in(message: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    calls = message.get("tool_calls")
    found = [call for call in calls if isinstance(call, Mapping)] if isinstance(calls, list) else []
    legacy = message.get("function_call")  # the pre-tools form, still sent by some servers
    if not found and isinstance(legacy, Mapping):
        found = [{"function": legacy}]
    return found


def _usage(usage: Any) -> tuple[int | None, int | None]:
    usage = _mapping(usage)
    return _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _first_choice(choices: Any) -> Mapping[str, Any]:
    if not isinstance(choices, list):
        return {}
    mappings = [_mapping(choice) for choice in choices]
    first = [choice for choice in mappings if choice.get("index") in (None, 0)]
    return (first or mappings or [{}])[0]


def _body(response: Any) -> Mapping[str, Any]:
    if isinstance(response, str | bytes | bytearray):
        try:
            response = json.loads(response)
        except ValueError as exc:
            raise ValidationError(f"the chat completion is not valid JSON: {exc}") from exc
    response = _dumped(response)
    if not isinstance(response, Mapping):
        raise ValidationError(
            f"a chat completion must be a JSON object, not {type(response).__name__}"
        )
    return response


def _dumped(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    return dump() if callable(dump) and not isinstance(value, Mapping) else value


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _hold_surrogate(text: str) -> tuple[str, str]:
    """Hold back a trailing high surrogate: its pair comes in the next delta."""
    if text and "\ud800" <= text[-1] <= "\udbff":
        return text[:-1], text[-1]
    return _join_surrogates(text), ""


def _join_surrogates(text: str) -> str:
    """Join surrogate pairs that arrived in separate deltas (``"\\ud83d"`` + ``"\\ude00"``)."""
    if not any("\ud800" <= char <= "\udfff" for char in text):
        return text
    try:
        return text.encode("utf-16", "surrogatepass").decode("utf-16")
    except UnicodeDecodeError:
        return text
