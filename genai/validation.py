"""The platform's rules for names and for numbers that come in as text, checked in one
place so that every entry point (Python, CLI, HTTP) accepts and refuses the same things.

- Names: :func:`check_project_name` (a DNS label, 3-40 characters),
  :func:`check_resource_name` (models, datasets, prompts, keys...), :func:`check_metric_name`
  (``train/loss``) and :func:`check_user_name`; each returns the name or raises
  :class:`~genai.errors.ValidationError` saying what is allowed.
- Ids, versions and dates: ASCII digits only, within a signed 64-bit integer
  (:data:`MAX_ID`): :func:`parse_id` and :func:`parse_iso_date` raise,
  :func:`int_problem`, :func:`ascii_int` and :func:`iso_date` only tell.
- Typed specs: :func:`first_problem` is pydantic's first error as ``(where, message)``,
  for a ValidationError that names the field.
"""

from typing import Any

from genai._ids import MAX_ID, ascii_int, int_problem, iso_date, parse_id, parse_iso_date
from genai._names import (
    check_metric_name,
    check_project_name,
    check_resource_name,
    check_user_name,
)

__all__ = [
    "MAX_ID",
    "ascii_int",
    "check_metric_name",
    "check_project_name",
    "check_resource_name",
    "check_user_name",
    "first_problem",
    "int_problem",
    "iso_date",
    "parse_id",
    "parse_iso_date",
]


def first_problem(error: Any, default: str = "spec") -> tuple[str, str]:
    """A pydantic ``ValidationError``'s first error: where (dotted field path, ``default``
    at the top) and what, without pydantic's ``Value error,`` prefix."""
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or default
    return where, str(first["msg"]).removeprefix("Value error, ")
