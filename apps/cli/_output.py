"""How the CLI prints: rich tables for people, ``--json`` for programs, one-line errors."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

__all__ = ["console", "err", "print_json", "show_record", "show_table", "sparkline", "when"]

# Piped output keeps whole columns instead of rich's 80-character default.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(_plain(value), indent=2, default=str) + "\n")


def when(value: datetime | None) -> str:
    return "" if value is None else f"{value:%Y-%m-%d %H:%M}"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return when(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, default=str)
    return str(getattr(value, "value", value))


def show_table(
    title: str,
    rows: Sequence[Any],
    columns: Sequence[tuple[str, Callable[[Any], Any]]],
    *,
    as_json: bool,
    empty: str = "nothing yet",
) -> None:
    if as_json:
        print_json(list(rows))
        return
    if not rows:
        console.print(f"[dim]{title}: {empty}[/dim]")
        return
    table = Table(title=title, title_justify="left")
    for name, _ in columns:
        table.add_column(name)
    for row in rows:
        table.add_row(*(_cell(get(row)) for _, get in columns))
    console.print(table)


def show_record(title: str, record: BaseModel, *, as_json: bool) -> None:
    if as_json:
        print_json(record)
        return
    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for name, value in record.model_dump().items():
        table.add_row(name.rstrip("_"), _cell(value))
    console.print(table)


_BARS = "▁▂▃▄▅▆▇█"


def sparkline(points: Sequence[tuple[int, float]], label: str, width: int = 60) -> str:
    """A metric over the steps (``(step, value)`` pairs) as one row of block characters
    between its first and last value; longer series are averaged into ``width`` buckets."""
    series = [value for _, value in sorted(points)]
    if not series:
        return ""
    first, last = series[0], series[-1]
    if len(series) > width:
        size = len(series) / width
        buckets = [
            series[int(i * size) : max(int((i + 1) * size), int(i * size) + 1)]
            for i in range(width)
        ]
        series = [sum(b) / len(b) for b in buckets]
    low, high = min(series), max(series)
    span = (high - low) or 1.0
    top = len(_BARS) - 1
    bars = "".join(_BARS[min(int((v - low) / span * top), top)] for v in series)
    return f"{label} {first:.4g} {bars} {last:.4g}"
