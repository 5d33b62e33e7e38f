"""Numbers that come in as text (ids, versions, limits in paths and query strings), read in
one place so every entry point accepts and refuses the same things.

Only ASCII digits count: ``str.isdigit()`` accepts ``²`` and ``٣``, and ``int()`` reads
``٣`` as 3 (and ``+3``, `` 3`` and ``3_000`` too), so a check built from them lets odd text
through or crashes on it. An id must also fit the database's signed 64-bit integer
(SQLite and PostgreSQL both raise an overflow error past it, which surfaced as a 500).

Text that can never name anything (not digits, zero, past 2**63-1) is the caller's
mistake: a 400 saying what an id looks like. That answer depends on the text alone, never
on what is stored, so it tells nothing about any project's things; a well-formed id that
names nothing stays the owner's 404.
"""

from __future__ import annotations

import re
from datetime import date

from genai.errors import ValidationError

__all__ = [
    "MAX_ID",
    "ascii_int",
    "int_problem",
    "iso_date",
    "parse_id",
    "parse_iso_date",
]

#: The largest id or version a row can have (a signed 64-bit integer).
MAX_ID = 2**63 - 1

_DIGITS = re.compile(r"[0-9]+", re.ASCII)
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)


def ascii_int(text: str) -> int | None:
    """``text`` as a non-negative integer when it is ASCII digits only; else None."""
    return int(text) if _DIGITS.fullmatch(text) else None


def int_problem(value: object, *, low: int = 1, high: int = MAX_ID) -> str | None:
    """What is wrong with ``value`` (text or a JSON number) as a whole number from ``low``
    to ``high``, or None when it is one. Booleans are not numbers."""
    number = ascii_int(value) if isinstance(value, str) else value
    if isinstance(number, int) and not isinstance(number, bool) and low <= number <= high:
        return None
    return f"must be a whole number from {low} to {high} (digits 0-9 only), not {_shown(value)}"


def parse_id(text: str, *, field: str, low: int = 1, high: int = MAX_ID) -> int:
    """``text`` as an integer from ``low`` to ``high`` (an id: 1 to 2**63-1), or a
    :class:`ValidationError` naming ``field``."""
    problem = int_problem(text, low=low, high=high)
    if problem is not None:
        raise ValidationError(f"'{field}' {problem}", field=field)
    return int(text)


def iso_date(text: str) -> date | None:
    """``text`` as an ISO calendar date (``YYYY-MM-DD``), or None: nothing else is read as
    a date (not a Unix timestamp, not a time of day)."""
    if not _ISO_DATE.fullmatch(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def parse_iso_date(text: str, *, field: str) -> date:
    """``text`` as an ISO date, or a :class:`ValidationError` naming ``field``."""
    found = iso_date(text) if isinstance(text, str) else None
    if found is None:
        raise ValidationError(
            f"'{field}' must be a date written YYYY-MM-DD (e.g. 2025-01-31), not {_shown(text)}",
            field=field,
        )
    return found


def _shown(value: object) -> str:
    shown = repr(value)
    return shown if len(shown) <= 40 else shown[:37] + "..."
