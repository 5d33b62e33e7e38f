"""Restoring pseudonyms: tokens like ``<EMAIL_ADDRESS_1>`` back to the original values.

Restore finds a token however a model reshaped it a little: any case, spaces or hyphens
for underscores, a missing separator before the number, other brackets (``[…]``, ``{…}``,
``«…»``, ``&lt;…&gt;``, JSON's ``\\u003c…\\u003e``), a dropped closing bracket, or no
brackets at all (``EMAIL_ADDRESS_1``, ``email_address_1``). Only tokens of the session are
replaced; anything else is left as it is.

For streams, :class:`RestoringFilter` holds back the tail of what it has seen while that
tail could still become a token, so no half token (and no half-restored value) is ever
sent. Tool-call arguments are JSON text: there, restored values are JSON-escaped.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from typing import Any, Final

__all__ = ["Restorer", "RestoringFilter", "restore_response", "token_text"]

_TEXT_BRACKETS: Final = (
    ("<", (">",)),
    ("&lt;", ("&gt;",)),
    ("\\<", ("\\>", ">")),
    ("[", ("]",)),
    ("{", ("}",)),
    ("«", ("»",)),
    ("‹", ("›",)),
)
_JSON_BRACKETS: Final = (
    ("<", (">", "\\u003e", "\\u003E")),
    ("\\u003c", ("\\u003e", "\\u003E", ">")),
    ("\\u003C", ("\\u003E", "\\u003e", ">")),
    ("[", ("]",)),
    ("{", ("}",)),
    ("«", ("»",)),
)
_INNER_TEXT = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 _-\\")
_INNER_JSON = _INNER_TEXT - {"\\"}
_WORD_TEXT = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_\\")
_WORD_JSON = _WORD_TEXT - {"\\"}
_SEPARATORS = re.compile(r"[\s_\-\\]+")
_TRAILING_NUMBER = re.compile(r"(?<=[A-Z])(\d+)$")
_PARTIAL: Final = (-1, "")  # "a token may still be forming here"


def token_text(token: str) -> str:
    """How a token is written into text: ``<EMAIL_ADDRESS_1>``."""
    return f"<{token}>"


def _skeleton(inner: str) -> str:
    """A token's inside in canonical form: upper case, single underscores, ``_<n>``."""
    parts = [p for p in _SEPARATORS.split(inner.upper()) if p]
    return _TRAILING_NUMBER.sub(r"_\1", "_".join(parts))


class Restorer:
    """Replaces a session's tokens with their values, in text or in JSON text."""

    def __init__(self, mapping: Mapping[str, str]) -> None:
        self._values = {token.upper(): value for token, value in mapping.items()}
        self._prefixes = {key[:i] for key in self._values for i in range(len(key) + 1)}
        self._longest = max((len(key) for key in self._values), default=0)
        self._firsts = {key[0] for key in self._values}
        # where a token can start: an opening bracket, or a word starting like a token
        letters = re.escape("".join(sorted(self._firsts | {c.lower() for c in self._firsts})))
        bare = {False: rf"|(?<![A-Za-z0-9_\\])[{letters}]", True: rf"|(?<![A-Za-z0-9_])[{letters}]"}
        self._starts = {
            json_mode: re.compile(r"[<&\\\[{«‹]" + (bare[json_mode] if letters else ""))
            for json_mode in (False, True)
        }

    def __bool__(self) -> bool:
        return bool(self._values)

    def __repr__(self) -> str:  # never the values
        return f"<Restorer of {len(self._values)} tokens>"

    def text(self, text: str) -> str:
        """``text`` with every token of the session replaced."""
        return self.scan(text, final=True)[0] if self._values and text else text

    def json(self, text: str) -> str:
        """JSON ``text`` (e.g. tool-call arguments) with tokens replaced, values escaped."""
        return self.scan(text, final=True, json_mode=True)[0] if self._values and text else text

    def stream(self) -> RestoringFilter:
        return RestoringFilter(self)

    # ------------------------------------------------------------ the scanner

    def scan(
        self, buf: str, *, final: bool, json_mode: bool = False, before: str = ""
    ) -> tuple[str, int]:
        """``buf`` restored up to where a token may still be forming (all of it when
        ``final``): the output and how many characters of ``buf`` it consumed."""
        out: list[str] = []
        i = plain = 0
        n = len(buf)
        starts = self._starts[json_mode]
        while i < n:
            prev = buf[i - 1] if i else before
            found = self._at(buf, i, final, json_mode, prev)
            if found is None:
                following = starts.search(buf, i + 1)
                i = following.start() if following else n
                continue
            out.append(buf[plain:i])
            if found is _PARTIAL:
                return "".join(out), i
            end, key = found
            value = self._values[key]
            out.append(json.dumps(value, ensure_ascii=False)[1:-1] if json_mode else value)
            i = plain = end
        out.append(buf[plain:])
        return "".join(out), n

    def _at(
        self, buf: str, i: int, final: bool, json_mode: bool, prev: str
    ) -> tuple[int, str] | None:
        rest = len(buf) - i
        for opener, closers in _JSON_BRACKETS if json_mode else _TEXT_BRACKETS:
            if buf.startswith(opener, i):
                found = self._bracketed(buf, i + len(opener), closers, final, json_mode)
                if found is not None:
                    return found
            elif not final and rest < len(opener) and opener.startswith(buf[i:]):
                return _PARTIAL  # the buffer ends inside an opener (``&l``, ``\\u00``)
        word = _WORD_JSON if json_mode else _WORD_TEXT
        if prev and prev in word:
            return None
        if buf[i].upper() not in self._firsts:
            return None
        return self._bare(buf, i, final, word)

    def _bracketed(
        self, buf: str, j: int, closers: tuple[str, ...], final: bool, json_mode: bool
    ) -> tuple[int, str] | None:
        inner = _INNER_JSON if json_mode else _INNER_TEXT
        limit = min(len(buf), j + self._longest + 8)
        k = j
        while k < limit and buf[k] in inner:
            k += 1
        if k == len(buf) and not final:
            return _PARTIAL if _skeleton(buf[j:k]) in self._prefixes else None
        key = _skeleton(buf[j:k])
        if key not in self._values:
            return self._cut(buf, j, k)
        for closer in closers:
            if buf.startswith(closer, k):
                return k + len(closer), key
            if not final and len(buf) - k < len(closer) and closer.startswith(buf[k:]):
                return _PARTIAL
        return k, key  # the model dropped the closing bracket

    def _cut(self, buf: str, j: int, k: int) -> tuple[int, str] | None:
        """``<EMAIL_ADDRESS_1 and more``: the longest run of words that is a token."""
        for cut in range(k - 1, j, -1):
            if buf[cut] == " " and buf[cut - 1] != " ":
                key = _skeleton(buf[j:cut])
                if key in self._values:
                    return cut, key
        return None

    def _bare(self, buf: str, i: int, final: bool, word: frozenset[str]) -> tuple[int, str] | None:
        limit = min(len(buf), i + self._longest + 8)
        k = i
        while k < limit and buf[k] in word:
            k += 1
        key = buf[i:k].upper().replace("\\", "")
        if k == len(buf) and not final:
            return _PARTIAL if key in self._prefixes else None
        if k < len(buf) and buf[k] in word:
            return None  # longer than any token
        return (k, key) if key in self._values else None


class RestoringFilter:
    """A :class:`~genai.gateway.StreamFilter` that restores tokens in a streamed answer.

    ``feed`` returns what can be sent now; a tail that may still become a token waits for
    the next piece, and ``flush`` gives it back (restored) at the end. Each tool call's
    streamed arguments get their own JSON-aware filter from :meth:`tool_arguments`.
    """

    def __init__(self, restorer: Restorer, *, json_mode: bool = False) -> None:
        self._restorer = restorer
        self._json = json_mode
        self._buf = ""
        self._before = ""
        self._tools: dict[int, RestoringFilter] = {}

    def feed(self, text: str) -> str:
        if not self._restorer:
            return text
        self._buf += text
        out, used = self._restorer.scan(
            self._buf, final=False, json_mode=self._json, before=self._before
        )
        if used:
            self._before = self._buf[used - 1]
            self._buf = self._buf[used:]
        return out

    def flush(self) -> str:
        if not self._buf:
            return ""
        out, _ = self._restorer.scan(
            self._buf, final=True, json_mode=self._json, before=self._before
        )
        self._before, self._buf = self._buf[-1], ""
        return out

    def tool_arguments(self, index: int) -> RestoringFilter:
        """The filter of the streamed arguments of tool call ``index`` (JSON text)."""
        found = self._tools.get(index)
        if found is None:
            found = self._tools[index] = RestoringFilter(self._restorer, json_mode=True)
        return found

    @property
    def pending(self) -> str:
        """What is held back now (for tests and diagnostics; never logged)."""
        return self._buf


def _restore_message(message: dict[str, Any], restorer: Restorer) -> None:
    content = message.get("content")
    if isinstance(content, str):
        message["content"] = restorer.text(content)
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                part["text"] = restorer.text(part["text"])
    for key in ("reasoning_content", "refusal"):
        if isinstance(message.get(key), str):
            message[key] = restorer.text(message[key])
    calls = [c.get("function") for c in message.get("tool_calls") or [] if isinstance(c, dict)]
    calls.append(message.get("function_call"))
    for function in calls:
        if isinstance(function, dict) and isinstance(function.get("arguments"), str):
            function["arguments"] = restorer.json(function["arguments"])


def restore_response(response: dict[str, Any], restorer: Restorer) -> dict[str, Any]:
    """A copy of an OpenAI response body (chat or text completion) with tokens restored in
    every choice's text, message content and tool-call arguments."""
    if not restorer or not isinstance(response.get("choices"), list):
        return response
    restored = {**response, "choices": copy.deepcopy(response["choices"])}
    for choice in restored["choices"]:
        if not isinstance(choice, dict):
            continue
        if isinstance(choice.get("text"), str):
            choice["text"] = restorer.text(choice["text"])
        for key in ("message", "delta"):
            if isinstance(choice.get(key), dict):
                _restore_message(choice[key], restorer)
    return restored
