"""Training data: the four row formats, and a validator that reads every row before any
training starts and reports each problem with its row number and the fix.

Formats (one per dataset; ``auto`` detects it from the first row's fields):

- ``chat``: ``{"messages": [{"role": ..., "content": ...}, ...], "tools": [...]}`` in
  OpenAI's format (system, multi-turn, assistant ``tool_calls``, ``tool`` results);
- ``alpaca``: ``{"instruction": ..., "input": ..., "output": ...}``;
- ``prompt_completion``: ``{"prompt": ..., "completion": ...}`` (strings, or lists of
  chat messages as TRL's conversational prompt-completion);
- ``text``: ``{"text": ...}``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from genai.errors import ValidationError

__all__ = [
    "FORMATS",
    "Example",
    "Problem",
    "ValidationReport",
    "detect_format",
    "to_example",
    "validate_rows",
]

FORMATS: dict[str, tuple[set[str], set[str]]] = {
    # format: (required fields, optional fields)
    "chat": ({"messages"}, {"tools", "id", "metadata"}),
    "alpaca": ({"instruction", "output"}, {"input", "system", "id", "metadata"}),
    "prompt_completion": ({"prompt", "completion"}, {"tools", "id", "metadata"}),
    "text": ({"text"}, {"id", "metadata"}),
}
_ROLES = {"system", "developer", "user", "assistant", "tool"}
_MAX_REPORTED = 50


@dataclass(frozen=True)
class Example:
    """One row, normalised: chat ``messages`` (with the index of the first message whose
    assistant turns are trained), or a ``prompt``/``completion`` pair of plain text."""

    kind: Literal["chat", "text"]
    messages: tuple[dict[str, Any], ...] = ()
    tools: tuple[dict[str, Any], ...] | None = None
    train_from: int = 0  # chat: assistant turns at or after this index are trained
    prompt: str = ""
    completion: str = ""


@dataclass(frozen=True)
class Problem:
    row: int  # 1-based, as an editor shows a JSONL file
    message: str
    fix: str
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        return f"row {self.row}: {self.message} ({self.fix})"


@dataclass
class ValidationReport:
    format: str
    rows: int
    problems: list[Problem] = field(default_factory=list)
    trained_tokens: int = 0
    longest: int = 0

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def raise_for_errors(self, what: str = "the dataset") -> None:
        """A :class:`~genai.errors.ValidationError` listing the first errors, if any."""
        errors = self.errors
        if not errors:
            return
        shown = "; ".join(str(p) for p in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise ValidationError(
            f"{what} has {len(errors)} problems: {shown}{more}. "
            "`genai finetune validate` lists them all",
            field="dataset",
        )


def detect_format(row: Mapping[str, Any]) -> str:
    """The format whose required fields the row has."""
    keys = set(row)
    for name, (required, _) in FORMATS.items():
        if required <= keys:
            return name
    raise ValidationError(
        f"cannot tell the dataset's format from its first row's fields ({', '.join(sorted(keys))}):"
        " rows need 'messages' (chat), 'instruction' and 'output' (alpaca), 'prompt' and "
        "'completion', or 'text'",
        field="format",
    )


def to_example(row: Mapping[str, Any], fmt: str) -> Example:
    """The row as an :class:`Example`; a ``ValueError`` says what is wrong with it."""
    required, optional = FORMATS[fmt]
    missing = required - set(row)
    if missing:
        raise ValueError(f"missing field {', '.join(sorted(missing))} for the {fmt} format")
    unknown = set(row) - required - optional
    if unknown:
        raise ValueError(
            f"unknown field {', '.join(sorted(unknown))} for the {fmt} format "
            f"(allowed: {', '.join(sorted(required | optional))})"
        )
    tools = _tools(row.get("tools"))
    if fmt == "chat":
        return Example("chat", _messages(row["messages"], "messages"), tools)
    if fmt == "alpaca":
        instruction, output = _text(row, "instruction"), _text(row, "output", empty=False)
        extra = row.get("input") or ""
        if not isinstance(extra, str):
            raise ValueError("'input' must be a string")
        user = f"{instruction}\n\n{extra}" if extra.strip() else instruction
        system = row.get("system")
        head = [{"role": "system", "content": str(system)}] if system else []
        messages = (*head, {"role": "user", "content": user})
        return Example(
            "chat", (*messages, {"role": "assistant", "content": output}), None, len(messages)
        )
    if fmt == "prompt_completion":
        prompt, completion = row["prompt"], row["completion"]
        if isinstance(prompt, list):
            asked = _messages(prompt, "prompt", need_assistant=False)
            answer = _messages(completion, "completion")
            return Example("chat", asked + answer, tools, len(asked))
        return Example("text", prompt=_text(row, "prompt"), completion=_text(row, "completion"))
    return Example("text", completion=_text(row, "text", empty=False))


def _text(row: Mapping[str, Any], key: str, *, empty: bool = True) -> str:
    value = row.get(key)
    if not isinstance(value, str):
        raise ValueError(f"'{key}' must be a string, not {type(value).__name__}")
    if not empty and not value.strip():
        raise ValueError(f"'{key}' is empty")
    return value


def _tools(value: Any) -> tuple[dict[str, Any], ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(
        isinstance(t, dict) and isinstance(t.get("function"), dict) for t in value
    ):
        raise ValueError("'tools' must be a list of {type: function, function: {...}} objects")
    return tuple(value)


def _messages(value: Any, where: str, *, need_assistant: bool = True) -> tuple[dict[str, Any], ...]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"'{where}' must be a non-empty list of messages")
    calls: set[str] = set()
    out = []
    for number, message in enumerate(value, 1):
        if not isinstance(message, dict):
            raise ValueError(f"{where}[{number}] is not an object")
        role = message.get("role")
        if role not in _ROLES:
            raise ValueError(
                f"{where}[{number}] has role {role!r}: use one of {', '.join(sorted(_ROLES))}"
            )
        content = message.get("content")
        if content is not None and not isinstance(content, str):
            raise ValueError(f"{where}[{number}].content must be a string")
        tool_calls = message.get("tool_calls")
        if role == "assistant":
            if not (content or "").strip() and not tool_calls:
                raise ValueError(f"{where}[{number}] is an empty assistant turn")
            for call in tool_calls or []:
                if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
                    raise ValueError(f"{where}[{number}].tool_calls holds a malformed call")
                calls.add(str(call.get("id", "")))
            out.append(_with_parsed_arguments(message) if tool_calls else dict(message))
            continue
        if role == "tool" and not calls:
            raise ValueError(f"{where}[{number}] is a tool result with no tool call before it")
        if role in ("system", "developer") and number != 1:
            raise ValueError(f"{where}[{number}] is a {role} message that is not the first")
        out.append(dict(message))
    if need_assistant and not any(m["role"] == "assistant" for m in out):
        raise ValueError(f"'{where}' has no assistant turn: nothing would be trained")
    return tuple(out)


def _with_parsed_arguments(message: dict[str, Any]) -> dict[str, Any]:
    """Chat templates render ``arguments`` as an object; OpenAI's format carries a string."""
    calls = []
    for call in message["tool_calls"]:
        function = dict(call["function"])
        arguments = function.get("arguments", {})
        if isinstance(arguments, str):
            try:
                function["arguments"] = json.loads(arguments or "{}")
            except json.JSONDecodeError:
                raise ValueError(f"tool call arguments are not JSON: {arguments[:60]!r}") from None
        calls.append({**call, "function": function})
    return {**message, "tool_calls": calls}


def validate_rows(
    rows: Sequence[Mapping[str, Any]] | Iterable[Mapping[str, Any]],
    *,
    fmt: str = "auto",
    encoder: Any = None,
    max_length: int | None = None,
) -> tuple[ValidationReport, list[Example]]:
    """Read every row; with ``encoder`` (a :class:`finetune._tokens.Encoder`) also render
    and tokenize it, checking the template, the length and that some token is trained."""
    rows = list(rows)
    if not rows:
        raise ValidationError("the dataset has no rows", field="dataset")
    if fmt == "auto":
        fmt = detect_format(rows[0])
    report = ValidationReport(format=fmt, rows=len(rows))
    examples: list[Example] = []
    seen: dict[str, int] = {}
    for number, row in enumerate(rows, 1):
        if len(report.problems) >= _MAX_REPORTED:
            break
        key = json.dumps(row, sort_keys=True, default=str)
        if key in seen:
            report.problems.append(
                Problem(
                    number,
                    f"duplicates row {seen[key]}",
                    "remove it, unless the repetition is meant to weight the row",
                    "warning",
                )
            )
        seen.setdefault(key, number)
        try:
            example = to_example(row, fmt)
        except ValueError as error:
            report.problems.append(Problem(number, str(error), _fix_for(fmt)))
            continue
        if encoder is not None:
            try:
                encoded = encoder.encode(example)
            except ValueError as error:
                report.problems.append(Problem(number, str(error), "fix the row or the template"))
                continue
            length = len(encoded.input_ids)
            report.longest = max(report.longest, length)
            if max_length is not None and length > max_length:
                report.problems.append(
                    Problem(
                        number,
                        f"is {length} tokens long, over max_length {max_length}",
                        "raise max_length, or shorten or split the row",
                    )
                )
                continue
            trained = encoded.trained
            if trained == 0:
                report.problems.append(
                    Problem(number, "has no trained token", "give it an assistant turn or text")
                )
                continue
            report.trained_tokens += trained
        examples.append(example)
    return report, examples


def _fix_for(fmt: str) -> str:
    required, optional = FORMATS[fmt]
    needed, allowed = ", ".join(sorted(required)), ", ".join(sorted(optional))
    return f"a {fmt} row has {needed} (and optionally {allowed})"
