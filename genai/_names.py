"""Name rules, checked in one place so every entry point says the same thing.

- Project names: 3–40 characters of lower-case letters, digits and hyphens, starting with a
  letter and ending with a letter or digit (a DNS label: it becomes a Kubernetes namespace
  and part of vector collection names).
- Resource names (models, datasets, adapters, prompts, deployments, keys, aliases, service
  accounts): 1–100 characters of letters, digits, ``.``, ``_`` and ``-``, starting and
  ending with a letter or digit.
- Metric names: like resource names, with ``/`` allowed too (``train/loss``).
- User names: 1–100 characters of lower-case letters, digits, ``.``, ``_``, ``-`` and ``@``
  (an e-mail address works), starting with a letter or digit.
"""

from __future__ import annotations

import re

from genai.errors import ValidationError

__all__ = ["check_metric_name", "check_project_name", "check_resource_name", "check_user_name"]

_RULES: dict[str, tuple[re.Pattern[str], str]] = {
    "project": (
        re.compile(r"[a-z][a-z0-9-]{1,38}[a-z0-9]"),
        "3-40 lower-case letters, digits and hyphens, starting with a letter and ending with "
        "a letter or digit (e.g. 'payments-bot')",
    ),
    "resource": (
        re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9])?"),
        "1-100 letters, digits, '.', '_' or '-', starting and ending with a letter or digit "
        "(e.g. 'support-faq_v2')",
    ),
    "metric": (
        re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._/-]{0,98}[A-Za-z0-9])?"),
        "1-100 letters, digits, '.', '_', '-' or '/', starting and ending with a letter or "
        "digit (e.g. 'train/loss')",
    ),
    "user": (
        re.compile(r"[a-z0-9][a-z0-9._@-]{0,99}"),
        "1-100 lower-case letters, digits, '.', '_', '-' or '@', starting with a letter or "
        "digit (e.g. 'alice' or 'alice@corp.com')",
    ),
}


def _check(rule: str, name: str, *, kind: str, field: str) -> str:
    pattern, allowed = _RULES[rule]
    if not isinstance(name, str) or not pattern.fullmatch(name):
        raise ValidationError(f"invalid {kind} {name!r}: use {allowed}", field=field)
    return name


def check_project_name(name: str) -> str:
    return _check("project", name, kind="project name", field="project")


def check_resource_name(name: str, *, kind: str = "name") -> str:
    return _check("resource", name, kind=kind, field=kind)


def check_metric_name(name: str) -> str:
    return _check("metric", name, kind="metric name", field="metrics")


def check_user_name(name: str) -> str:
    return _check("user", name, kind="user name", field="user")
