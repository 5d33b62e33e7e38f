"""``FakeLLM``: a scripted :class:`~genai.models.LLMBackend` for tests, registered as ``fake``.

Give it the replies it should make, in order: texts, tool calls, or exceptions to raise.
Each generation (``generate`` or ``stream``) takes the next one; once the script is used up
it answers ``default`` (or refuses with a :class:`~genai.errors.ConfigError` when there is
none). It keeps the contract the real backends keep: ``max_tokens`` and ``stop`` cut a text
reply (``finish_reason="length"`` / ``"stop"``), a request past ``context_window`` is a
:class:`~genai.errors.ValidationError`, an unknown adapter a
:class:`~genai.errors.NotFoundError`; streams come in word pieces and end with a chunk that
carries the finish reason, the usage and any tool calls. A token is a word or a punctuation
mark, so counts are deterministic. Every generation request is kept in :attr:`requests`.

    llm = FakeLLM(["Hello!", ToolCall(id="c1", function={"name": "f", "arguments": "{}"})])
    assert (await llm.generate(request)).text == "Hello!"
    assert (await llm.generate(request)).finish_reason == "tool_calls"
    assert llm.requests == [request, request]

A deployment names it like any backend: ``create_backend("fake", replies=["Hi"])``; replies
given as mappings (``{"text": ...}`` or ``{"tool_calls": [...]}``) come from such options.
``supports`` names the request features it honours (default: all of
``FEATURES`` (genai.models._protocols)); the others it refuses by name, as a backend without them
does: ``FakeLLM(supports=[])`` is a model that cannot call tools.
"""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import AsyncGenerator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from genai.errors import ConfigError, NotFoundError, ValidationError
from genai.models._protocols import FEATURES, refuse_unsupported
from genai.models._types import (
    FinishReason,
    Generation,
    GenerationChunk,
    GenerationRequest,
    LoadedAdapter,
    SamplingParams,
    ToolCall,
)

__all__ = ["FakeLLM", "FakeReply"]

_TOKEN = re.compile(r"\w+|[^\w\s]")
_PIECE = re.compile(r"\s*\S+|\s+")


@dataclass(frozen=True)
class FakeReply:
    """One scripted answer: a text, tool calls, or both."""

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()


#: What a script may hold: a text, one or several tool calls, a mapping with ``text`` and/or
#: ``tool_calls``, a :class:`FakeReply`, or an exception that the generation raises.
Reply = str | ToolCall | Sequence[ToolCall] | Mapping[str, Any] | FakeReply | BaseException


@dataclass(frozen=True)
class _Answer:
    text: str
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    tool_calls: list[ToolCall] | None


class FakeLLM:
    """An LLM backend that answers from a script (see the module's docstring).

    ``model_id`` is the base model's name, ``context_window`` the tokens a request may use
    (None: unbounded), ``adapters`` (name → path) are loaded from the start. Attributes for
    assertions: :attr:`requests` (every generation request, oldest first), :attr:`started`
    and :attr:`closed`, and :meth:`remaining` (replies not used yet).
    """

    def __init__(
        self,
        replies: Iterable[Reply] = (),
        *,
        default: Reply | None = None,
        model_id: str = "fake-llm",
        context_window: int | None = 4096,
        adapters: Mapping[str, str] | None = None,
        supports: Sequence[str] = FEATURES,
    ) -> None:
        unknown = sorted(set(supports) - set(FEATURES))
        if unknown:
            raise ValidationError(
                f"supports: unknown feature {unknown[0]!r}; use some of {', '.join(FEATURES)}",
                field="supports",
            )
        self._supports = tuple(supports)
        if not model_id:
            raise ValidationError("model_id must not be empty", field="model_id")
        if context_window is not None and context_window < 1:
            raise ValidationError(
                f"context_window must be at least 1, not {context_window}",
                field="context_window",
            )
        self._script: deque[FakeReply | BaseException] = deque(_reply(r) for r in replies)
        self._default = _reply(default) if default is not None else None
        self._model_id = model_id
        self._window = context_window
        self._adapters = {
            name: LoadedAdapter(name=name, path=path, base_model=model_id)
            for name, path in (adapters or {}).items()
        }
        self.requests: list[GenerationRequest] = []
        self.started = False
        self.closed = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FakeLLM({self._model_id!r}, {len(self._script)} replies left)"

    # ------------------------------------------------------------ the protocol

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def context_window(self) -> int | None:
        return self._window

    async def start(self) -> None:
        self.started = True

    async def close(self) -> None:
        self.closed = True

    async def generate(self, request: GenerationRequest) -> Generation:
        answer = self._answer(request)
        return Generation(
            text=answer.text,
            finish_reason=answer.finish_reason,
            prompt_tokens=answer.prompt_tokens,
            completion_tokens=answer.completion_tokens,
            tool_calls=answer.tool_calls,
        )

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[GenerationChunk, None]:
        answer = self._answer(request)
        for piece in _PIECE.findall(answer.text):
            yield GenerationChunk(text=piece)
        yield GenerationChunk(
            finish_reason=answer.finish_reason,
            prompt_tokens=answer.prompt_tokens,
            completion_tokens=answer.completion_tokens,
            tool_calls=answer.tool_calls,
        )

    async def count_tokens(self, request: GenerationRequest) -> int:
        return _prompt_tokens(request)

    def adapters(self) -> list[LoadedAdapter]:
        return sorted(self._adapters.values(), key=lambda a: a.name)

    async def load_adapter(self, name: str, path: str, *, replace: bool = False) -> LoadedAdapter:
        if not name or name == self._model_id:
            raise ValidationError(f"adapter name {name!r} is reserved or empty", field="lora_name")
        if name in self._adapters and not replace:
            raise ValidationError(
                f"an adapter named {name!r} is already loaded: unload it first, or reload it "
                "with replace=True",
                field="lora_name",
            )
        info = LoadedAdapter(name=name, path=str(path), base_model=self._model_id)
        self._adapters[name] = info
        return info

    async def unload_adapter(self, name: str) -> None:
        if self._adapters.pop(name, None) is None:
            raise NotFoundError(f"no adapter named {name!r} is loaded")

    # ------------------------------------------------------------ the script

    def remaining(self) -> int:
        """Scripted replies not used yet (the default not counted)."""
        with self._lock:
            return len(self._script)

    def add_replies(self, *replies: Reply) -> None:
        """Append replies to the script."""
        with self._lock:
            self._script.extend(_reply(r) for r in replies)

    def _answer(self, request: GenerationRequest) -> _Answer:
        refuse_unsupported(request, backend="fake", supports=self._supports)
        if request.adapter not in (None, self._model_id) and request.adapter not in self._adapters:
            raise NotFoundError(f"the model {request.adapter!r} does not exist")
        prompt_tokens = _prompt_tokens(request)
        self._check_window(prompt_tokens, request.params)
        with self._lock:
            self.requests.append(request)
            reply = self._script.popleft() if self._script else self._default
            used = len(self.requests)
        if reply is None:
            raise ConfigError(
                f"FakeLLM's script ran out at request {used}: give it more replies, or a "
                "default reply"
            )
        if isinstance(reply, BaseException):
            raise reply
        if reply.tool_calls:
            calls = list(reply.tool_calls)
            spent = sum(_count(c.function.get("name", "")) for c in calls) + sum(
                _count(str(c.function.get("arguments", ""))) for c in calls
            )
            return _Answer(reply.text, "tool_calls", prompt_tokens, spent, calls)
        text, finish = _limit(reply.text, request.params)
        return _Answer(text, finish, prompt_tokens, _count(text), None)

    def _check_window(self, prompt_tokens: int, params: SamplingParams) -> None:
        wanted = prompt_tokens + (params.max_tokens or 0)
        if self._window is not None and wanted > self._window:
            raise ValidationError(
                f"this model's context window is {self._window} tokens, but the request asks "
                f"for {wanted} ({prompt_tokens} in the prompt + {params.max_tokens} "
                "max_tokens): shorten the prompt or lower max_tokens",
                field="max_tokens",
            )


def _reply(value: Reply) -> FakeReply | BaseException:
    if isinstance(value, FakeReply | BaseException):
        return value
    if isinstance(value, str):
        return FakeReply(text=value)
    if isinstance(value, ToolCall):
        return FakeReply(tool_calls=(value,))
    if isinstance(value, Mapping):
        unknown = set(value) - {"text", "tool_calls"}
        if unknown:
            raise ValidationError(
                f"a FakeLLM reply has 'text' and/or 'tool_calls', not {sorted(unknown)}",
                field="replies",
            )
        calls = tuple(ToolCall.model_validate(c) for c in value.get("tool_calls") or ())
        return FakeReply(text=str(value.get("text") or ""), tool_calls=calls)
    calls = tuple(ToolCall.model_validate(c) for c in value)
    if not calls:
        raise ValidationError("an empty list of tool calls is not a reply", field="replies")
    return FakeReply(tool_calls=calls)


def _count(text: str) -> int:
    return len(_TOKEN.findall(text))


def _prompt_tokens(request: GenerationRequest) -> int:
    if request.messages is None:
        parts = [request.prompt or ""]
    else:
        parts = [message.text() for message in request.messages]
    parts.extend(f"[{p.id}] {p.text}" for p in request.context or [])
    return _count("\n".join(parts))


def _limit(text: str, params: SamplingParams) -> tuple[str, FinishReason]:
    """Cut at the first stop sequence, then after the ``max_tokens``-th token."""
    cuts = [i for i in (text.find(stop) for stop in params.stop if stop) if i >= 0]
    if cuts:
        text = text[: min(cuts)]
    if params.max_tokens is None:
        return text, "stop"
    tokens = list(_TOKEN.finditer(text))
    if len(tokens) <= params.max_tokens:
        return text, "stop"
    return text[: tokens[params.max_tokens - 1].end()], "length"
