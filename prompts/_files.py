"""Prompt files: what ``genai prompt push`` reads, and the YAML that diffs are made of.

- ``.yaml`` / ``.yml`` / ``.json``: ``messages`` (chat) or ``text``, optional ``variables``
  (``name: type`` or ``name: {type, default, description}``; inferred when left out) and an
  optional ``kind`` that must agree.
- ``.txt`` / ``.md`` / ``.j2`` / ``.jinja`` / ``.jinja2`` / ``.prompt``: the whole file is a
  text template, its variables inferred from the Jinja source (see ``PromptTemplate``).

:func:`to_yaml` writes the first format back, deterministically (sorted variables, block
scalars for multi-line text), so that two versions diff line by line and the output of
``genai prompt get --source`` can be edited and pushed again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from genai.errors import MissingDependencyError, ValidationError
from prompts._template import PromptTemplate

__all__ = ["TEXT_SUFFIXES", "from_dict", "load", "to_yaml"]

TEXT_SUFFIXES = (".txt", ".md", ".j2", ".jinja", ".jinja2", ".prompt")
_SPEC_SUFFIXES = (".yaml", ".yml", ".json")
_KEYS = {"kind", "messages", "text", "variables"}


def load(path: str | Path) -> PromptTemplate:
    """The template in a prompt file (see the module's docstring for the formats)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ValidationError(f"prompt file {str(path)!r} does not exist", field="path")
    suffix = file.suffix.lower()
    if suffix not in (*_SPEC_SUFFIXES, *TEXT_SUFFIXES):
        raise ValidationError(
            f"cannot tell the format of {file.name!r}: use a .yaml, .yml or .json prompt file, "
            f"or a text template ({', '.join(TEXT_SUFFIXES)})",
            field="path",
        )
    try:
        raw = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValidationError(f"{file} is not UTF-8 text", field="path") from None
    if suffix in TEXT_SUFFIXES:
        return PromptTemplate(text=raw)
    data = _parse_yaml(raw, file) if suffix != ".json" else _parse_json(raw, file)
    try:
        return from_dict(data)
    except ValidationError as error:
        raise ValidationError(f"{file.name}: {error.message}", field=error.field) from None


def from_dict(data: Any) -> PromptTemplate:
    """A template from the file format's mapping (``messages`` or ``text``, ``variables``)."""
    if not isinstance(data, Mapping):
        raise ValidationError(
            "a prompt file holds a mapping with 'messages' (chat) or 'text', and optionally "
            "'variables'",
            field="template",
        )
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise ValidationError(
            f"unknown key(s) {', '.join(map(repr, unknown))}: a prompt file has "
            f"{', '.join(sorted(_KEYS))}",
            field=unknown[0],
        )
    kind = data.get("kind")
    found = "chat" if "messages" in data else "text" if "text" in data else None
    if kind is not None and kind not in ("chat", "text"):
        raise ValidationError(f"kind {kind!r}: use chat or text", field="kind")
    if found is not None and kind is not None and kind != found:
        raise ValidationError(
            f"kind is {kind!r} but the file has {'messages' if found == 'chat' else 'text'}: "
            "a chat template has messages, a text template has text",
            field="kind",
        )
    variables = data.get("variables")
    if "variables" in data and variables is None:
        variables = {}
    return PromptTemplate(messages=data.get("messages"), text=data.get("text"), variables=variables)


def _parse_json(raw: str, file: Path) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValidationError(
            f"{file.name} is not valid JSON (line {error.lineno}: {error.msg})", field="path"
        ) from None


def _parse_yaml(raw: str, file: Path) -> Any:
    try:
        import yaml
    except ImportError as error:
        raise MissingDependencyError(
            "pyyaml", extra="prompts", purpose="Reading YAML prompt files"
        ) from error
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ValidationError(
            f"{file.name} is not valid YAML{where}: {error}", field="path"
        ) from None


# ------------------------------------------------------------------ writing YAML


def to_yaml(template: PromptTemplate) -> str:
    """The template as a YAML prompt file (no YAML library needed to write it)."""
    lines: list[str] = []
    if template.text is not None:
        lines += _key("text", template.text, indent=0)
    else:
        lines.append("messages:")
        for message in template.messages:
            lines.append(f"  - role: {message.role}")
            lines += _key("content", message.content, indent=4)
    if template.variables:
        lines.append("variables:")
        for name, spec in template.variables.items():
            fields = ", ".join(f"{k}: {_scalar(v)}" for k, v in spec.to_dict().items())
            lines.append(f"  {name}: {{{fields}}}")
    else:
        lines.append("variables: {}")
    return "\n".join(lines) + "\n"


def _key(key: str, value: str, *, indent: int) -> list[str]:
    pad = " " * indent
    if _block_safe(value):
        return [
            f"{pad}{key}: |-",
            *(f"{pad}  {line}" if line else "" for line in value.split("\n")),
        ]
    return [f"{pad}{key}: {_scalar(value)}"]


def _block_safe(text: str) -> bool:
    """Whether a literal block scalar (``|-``) gives ``text`` back exactly."""
    return (
        "\n" in text
        and not text.startswith((" ", "\n"))
        and not text.endswith(("\n", " "))
        and not any(c in text for c in "\r\t\x85\u2028\u2029\ufeff")
        and all(line.isprintable() for line in text.split("\n"))
    )


def _scalar(value: Any) -> str:
    """A flow scalar: JSON is valid YAML (strings double-quoted, so nothing reads as
    another type)."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True)
