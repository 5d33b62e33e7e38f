"""How templates and versions show in notebooks: HTML for Jupyter, rich for the terminal.

A data scientist inspecting ``hub.get("qa@production")`` should see, without printing
anything, which version it is, who made it and why, its labels, its variables and its
messages, with template text escaped (a template is shown, never interpreted as HTML).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prompts._template import PromptTemplate

__all__ = ["html_of", "rich_of"]

_ROLE_COLOURS = {"system": "#6b4fbb", "user": "#1f6feb", "assistant": "#1a7f37", "text": "#57606a"}


def html_of(template: PromptTemplate, *, title: str, meta: Sequence[tuple[str, str]] = ()) -> str:
    e = html.escape
    parts = [
        '<div style="font-family:system-ui,sans-serif;border:1px solid #d0d7de;'
        'border-radius:6px;padding:8px 12px;max-width:900px">',
        f'<div style="font-weight:600;margin-bottom:4px">{e(title)} '
        f'<span style="color:#57606a;font-weight:400">({template.kind})</span></div>',
    ]
    if meta:
        items = " · ".join(f"<b>{e(k)}</b> {e(v)}" for k, v in meta if v)
        parts.append(f'<div style="color:#57606a;font-size:90%;margin-bottom:6px">{items}</div>')
    if template.variables:
        rows = "".join(
            f"<tr><td><code>{e(name)}</code></td><td>{e(v.type)}</td>"
            f"<td>{'required' if v.required else '<code>' + e(repr(v.default)) + '</code>'}</td>"
            f"<td>{e(v.description)}</td></tr>"
            for name, v in template.variables.items()
        )
        parts.append(
            '<table style="border-collapse:collapse;font-size:90%;margin-bottom:6px">'
            "<tr><th align=left>variable</th><th align=left>type</th>"
            f"<th align=left>default</th><th align=left>description</th></tr>{rows}</table>"
        )
    for role, content in _blocks(template):
        colour = _ROLE_COLOURS.get(role, "#57606a")
        parts.append(
            f'<div style="margin:4px 0"><span style="background:{colour};color:white;'
            f'border-radius:4px;padding:0 6px;font-size:85%">{e(role)}</span>'
            '<pre style="white-space:pre-wrap;margin:2px 0 0 0;padding:6px;background:#f6f8fa;'
            f'border-radius:4px">{e(content)}</pre></div>'
        )
    parts.append("</div>")
    return "".join(parts)


def rich_of(template: PromptTemplate, *, title: str, meta: Sequence[tuple[str, str]] = ()) -> Any:
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    items: list[Any] = []
    if meta:
        items.append(Text(" · ".join(f"{k} {v}" for k, v in meta if v), style="dim"))
    if template.variables:
        table = Table(show_edge=False, pad_edge=False)
        for column in ("variable", "type", "default", "description"):
            table.add_column(column)
        for name, v in template.variables.items():
            table.add_row(
                name, v.type, "required" if v.required else repr(v.default), v.description
            )
        items.append(table)
    for role, content in _blocks(template):
        items.append(Panel(Text(content), title=role, title_align="left", border_style="dim"))
    return Panel(Group(*items), title=f"{title} ({template.kind})", title_align="left")


def _blocks(template: PromptTemplate) -> list[tuple[str, str]]:
    if template.text is not None:
        return [("text", template.text)]
    return [(m.role, m.content) for m in template.messages]
