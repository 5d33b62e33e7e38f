"""Row conversion for vendor fine-tuning: a dataset's validated rows as lines of OpenAI's
chat fine-tuning JSONL (:func:`openai_rows`), and those lines as the bytes of the file that
is uploaded."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from finetune._data import Example, ValidationReport, validate_rows
from genai.errors import ValidationError

__all__ = ["openai_rows"]

_MESSAGE_KEYS = {"role", "content", "name", "tool_calls", "tool_call_id", "weight"}


def openai_rows(
    rows: Sequence[Mapping[str, Any]], fmt: str, *, what: str
) -> tuple[list[dict[str, Any]], ValidationReport]:
    """The rows as lines of OpenAI's chat fine-tuning JSONL (``{"messages": [...],
    "tools": [...]}``), every row checked first; a ValidationError names the bad rows."""
    report, examples = validate_rows(rows, fmt=fmt)
    if report.format == "text":
        raise ValidationError(
            f"{what} holds text rows ({{'text': ...}}), which a vendor's chat fine-tuning "
            "cannot train (it learns assistant turns): give chat, alpaca or prompt/completion "
            "rows, or train with backend: local",
            field="format",
        )
    report.raise_for_errors(what)
    lines, problems = [], []
    for number, example in enumerate(examples, 1):
        try:
            lines.append(_line(example))
        except ValueError as error:
            problems.append(f"row {number}: {error}")
    if problems:
        raise ValidationError(
            f"{what} has rows the vendor's format cannot take: {'; '.join(problems[:5])}",
            field="dataset",
        )
    return lines, report


def _line(example: Example) -> dict[str, Any]:
    if example.kind == "text":  # a prompt/completion pair of plain text
        return {
            "messages": [
                {"role": "user", "content": example.prompt},
                {"role": "assistant", "content": example.completion},
            ]
        }
    messages = []
    for index, message in enumerate(example.messages):
        unknown = set(message) - _MESSAGE_KEYS
        if unknown:
            raise ValueError(
                f"message {index + 1} has field {', '.join(sorted(unknown))}, which OpenAI's "
                f"format does not take (allowed: {', '.join(sorted(_MESSAGE_KEYS))})"
            )
        out = dict(message)
        if out["role"] == "developer":
            out["role"] = "system"
        if out.get("tool_calls"):
            out["tool_calls"] = [_call(c) for c in out["tool_calls"]]
        if out["role"] == "assistant" and index < example.train_from:
            out.setdefault("weight", 0)  # a turn of the prompt: not trained, as locally
        messages.append(out)
    line: dict[str, Any] = {"messages": messages}
    if example.tools:
        line["tools"] = list(example.tools)
    return line


def _call(call: Mapping[str, Any]) -> dict[str, Any]:
    function = dict(call["function"])
    arguments = function.get("arguments", {})
    if not isinstance(arguments, str):  # the validator parsed it; OpenAI wants a string
        function["arguments"] = json.dumps(arguments, ensure_ascii=False)
    return {**call, "type": call.get("type", "function"), "function": function}


def _jsonl(lines: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()
