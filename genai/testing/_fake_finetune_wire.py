"""The fine-tuning fake's wire helpers: OpenAI's cursor pages, the job's hyperparameters,
multipart uploads (parsed with the standard library) and OpenAI's checks of a chat
fine-tuning JSONL file."""

from __future__ import annotations

import email.parser
import email.policy
import json
from typing import Any

from fastapi.responses import JSONResponse

__all__ = ["Refusal", "check_chat_jsonl", "hyperparameters", "multipart", "page", "words"]

_AUTO = {"n_epochs": 3, "batch_size": 1, "learning_rate_multiplier": 2.0}
_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}
_LINE_KEYS = {"messages", "tools", "parallel_tool_calls", "functions"}
_MESSAGE_KEYS = {"role", "content", "name", "tool_calls", "tool_call_id", "function_call", "weight"}


class Refusal(Exception):
    """An OpenAI error answer."""

    def __init__(self, status: int, message: str, *, code: str | None, param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param

    def response(self) -> JSONResponse:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        body = {"message": self.message, "type": kind, "param": self.param, "code": self.code}
        return JSONResponse({"error": body}, status_code=self.status)


def page(newest: list[Any], after: str | None, limit: int) -> tuple[list[Any], bool]:
    """OpenAI's cursor pages: the items after the one whose id is ``after``."""
    ids = [item["id"] if isinstance(item, dict) else item.id for item in newest]
    start = ids.index(after) + 1 if after in ids else 0
    limit = max(1, min(int(limit), 100))
    return newest[start : start + limit], start + limit < len(newest)


def hyperparameters(body: dict[str, Any]) -> dict[str, Any]:
    """The job's hyperparameters (``method.supervised.hyperparameters``, or the deprecated
    top-level ``hyperparameters``), ``auto`` resolved as the fake's vendor would."""
    method = body.get("method") or {}
    given = (method.get("supervised") or {}).get("hyperparameters")
    if given is None:
        given = body.get("hyperparameters") or {}
    out: dict[str, Any] = {}
    for name, auto in _AUTO.items():
        value = given.get(name, "auto")
        if value == "auto" or value is None:
            out[name] = auto
            continue
        number = float(value) if isinstance(value, (int, float)) else -1.0
        whole = name != "learning_rate_multiplier"
        if number <= 0 or (whole and not float(number).is_integer()):
            raise Refusal(
                400,
                f"Invalid hyperparameter {name}: {value!r} (expected 'auto' or a positive "
                f"{'integer' if whole else 'number'}).",
                code="invalid_hyperparameters",
                param=f"hyperparameters.{name}",
            )
        out[name] = int(number) if whole else number
    return out


def multipart(content_type: str, body: bytes) -> tuple[dict[str, str], tuple[str, bytes] | None]:
    """A multipart/form-data body's text fields and its ``file`` (name, bytes)."""
    if not content_type.startswith("multipart/form-data"):
        raise Refusal(400, "The request must be multipart/form-data.", code=None)
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    fields: dict[str, str] = {}
    uploaded = None
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if name == "file":
            uploaded = (str(part.get_filename() or "upload.jsonl"), data)
        elif isinstance(name, str):
            fields[name] = data.decode("utf-8", "replace")
    return fields, uploaded


def check_chat_jsonl(content: bytes) -> list[dict[str, Any]]:
    """The examples of a chat fine-tuning file, checked as OpenAI checks them; a
    ``ValueError`` names the first bad line."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("the file is not UTF-8") from None
    examples = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise ValueError(f"line {number} is not valid JSON") from None
        problem = _line_problem(row)
        if problem:
            raise ValueError(f"line {number}: {problem}")
        examples.append(row)
    if not examples:
        raise ValueError("the file has no examples")
    return examples


def _line_problem(row: Any) -> str:
    if not isinstance(row, dict):
        return "each line must be a JSON object"
    unknown = set(row) - _LINE_KEYS
    if unknown:
        return f"additional properties are not allowed ({', '.join(sorted(unknown))})"
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty list"
    for index, message in enumerate(messages):
        problem = _message_problem(message)
        if problem:
            return f"messages[{index}] {problem}"
    if not any(m["role"] == "assistant" for m in messages):
        return "the example has no assistant message"
    return ""


def _message_problem(message: Any) -> str:
    if not isinstance(message, dict):
        return "is not an object"
    unknown = set(message) - _MESSAGE_KEYS
    if unknown:
        return f"has unrecognized keys ({', '.join(sorted(unknown))})"
    role = message.get("role")
    if role not in _ROLES:
        return f"has an invalid role {role!r}"
    content = message.get("content")
    calls = message.get("tool_calls")
    if content is None and not (role == "assistant" and (calls or message.get("function_call"))):
        return "has no content"
    if content is not None and not isinstance(content, (str, list)):
        return "has content that is neither a string nor a list of parts"
    if "weight" in message and (role != "assistant" or message["weight"] not in (0, 1)):
        return "has a weight that is not 0 or 1 on an assistant message"
    for call in calls or []:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("arguments"), str):
            return "has a tool call whose function arguments are not a JSON string"
    return ""


def words(content: bytes) -> int:
    """Billed "tokens": the words of the assistant messages."""
    total = 0
    for line in content.splitlines():
        if line.strip():
            for message in json.loads(line).get("messages", []):
                if message.get("role") == "assistant" and isinstance(message.get("content"), str):
                    total += len(message["content"].split())
    return total
