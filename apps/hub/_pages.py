"""The Hub's read-only pages of one project: overview, deployments, prompts, the registry,
usage, agents and the audit log. Each reads through the same services the CLI and ``/api``
use (so the same ``authorize()`` decides); a section the caller's role may not read says so
instead of failing the whole page."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import date
from typing import Annotated, Any, Protocol, TypeVar

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from apps.deployments import newest_revisions
from apps.hub._trees import tree_of
from apps.hub._web import Page, page_of, render
from genai.errors import Forbidden, MissingDependencyError, NotFoundError, ValidationError
from genai.tenancy import Role, UsageRow

__all__ = ["router"]

router = APIRouter()
T = TypeVar("T")


class Refused:
    """A section the caller's role may not read: shown as the refusal's words."""

    def __init__(self, message: str) -> None:
        self.message = message


def section(read: Callable[[], T]) -> T | Refused:
    """``read()``, or the refusal when the role lacks the permission (a Forbidden)."""
    try:
        return read()
    except Forbidden as error:
        return Refused(str(error))


@router.get("/p/{project}", include_in_schema=False)
def overview(request: Request, project: str) -> Response:
    """The project: who is in it with which role, its keys (ids only), its quota."""
    page = page_of(request, project)
    client, name = page.scope.client, page.project
    return render(
        request,
        "overview.html",
        page=page,
        section="overview",
        info=client.projects.get(name),
        members=section(lambda: client.projects.members(name)),
        keys=section(lambda: client.keys.list(name)),
        quota=section(lambda: client.quotas.get(name)),
    )


@router.get("/p/{project}/deployments", include_in_schema=False)
def deployments(request: Request, project: str) -> Response:
    """Every deployment's newest revision: its targets and their traffic weights."""
    page = page_of(request, project)
    revisions = newest_revisions(page.scope.client, page.project)
    rows = [(r, _targets(r.spec)) for r in revisions]
    return render(request, "deployments.html", page=page, section="deployments", rows=rows)


def _targets(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of a spec with its share of the traffic (weights normalised to 100)."""
    targets = [t for t in spec.get("targets", []) if isinstance(t, dict)]
    weights = [float(t.get("weight", 1) or 0) for t in targets]
    total = sum(weights) or 1.0
    given = spec.get("shadow")
    shadow: dict[str, Any] = given if isinstance(given, dict) else {}
    out = []
    for target, weight in zip(targets, weights, strict=True):
        out.append(
            {
                "name": str(target.get("name", "")),
                "where": str(target.get("url") or target.get("backend") or ""),
                "model": str(target.get("model") or ""),
                "share": round(100 * weight / total, 1),
                "shadow": bool(shadow) and shadow.get("target") == target.get("name"),
            }
        )
    return out


# ------------------------------------------------------------------ prompts


def _prompts(page: Page) -> Any:
    from prompts import PromptHub

    return PromptHub(page.scope.client, page.project, ttl_s=0.0)


@router.get("/p/{project}/prompts", include_in_schema=False)
def prompt_list(request: Request, project: str) -> Response:
    """The newest version of each prompt, as the registry keeps it: only those rows are
    read, and none is parsed into a template (PromptHub.list() reads and parses every
    version, ~0.6 ms each), so the page stays fast with thousands of versions."""
    page = page_of(request, project)
    newest = page.scope.client.registry.prompts.list(page.project, latest=True)
    return render(request, "prompts.html", page=page, section="prompts", prompts=newest)


@router.get("/p/{project}/prompts/{name}", include_in_schema=False)
def prompt_detail(request: Request, project: str, name: str) -> Response:
    """Every version (newest first) with its source, and the history of its labels."""
    page = page_of(request, project)
    hub = _prompts(page)
    versions = hub.history(name)
    return render(
        request,
        "prompt.html",
        page=page,
        section="prompts",
        name=name,
        versions=versions,
        labels=hub.label_history(name),
        can_label=_role_at_least(page, Role.DEVELOPER),
    )


Version = Annotated[int, Query(ge=1, le=2**31 - 1)]


@router.get("/p/{project}/prompts/{name}/diff", include_in_schema=False)
def prompt_diff(request: Request, project: str, name: str, a: Version, b: Version) -> Response:
    """A unified diff of two versions' sources, line by line."""
    page = page_of(request, project)
    text = _prompts(page).diff(f"{name}@{a}", f"{name}@{b}")
    lines = [(_line_kind(line), line.rstrip("\n")) for line in text.splitlines(keepends=True)]
    return render(
        request, "diff.html", page=page, section="prompts", name=name, a=a, b=b, lines=lines
    )


def _line_kind(line: str) -> str:
    if line.startswith(("+++", "---")):
        return "file"
    if line.startswith("@@"):
        return "hunk"
    return {"+": "add", "-": "del"}.get(line[:1], "same")


# ------------------------------------------------------------------ registry


@router.get("/p/{project}/registry", include_in_schema=False)
def registry(request: Request, project: str) -> Response:
    """Models, datasets (with their row counts and schema), runs and adapters: the newest
    ``REGISTRY_ROWS`` of each kind, and how many there are in all. The registry reads only
    those rows (``list(limit=...)``, ``count()``), so the page costs the same with 10 or
    10,000 entries."""
    page = page_of(request, project)
    reg, name = page.scope.client.registry, page.project
    apis: dict[str, _Listing] = {
        "models": reg.models,
        "datasets": reg.datasets,
        "runs": reg.runs,
        "adapters": reg.adapters,
    }
    lists = {kind: api.list(name, limit=REGISTRY_ROWS) for kind, api in apis.items()}
    totals = {
        kind: len(items) if len(items) < REGISTRY_ROWS else apis[kind].count(name)
        for kind, items in lists.items()
    }
    return render(
        request,
        "registry.html",
        page=page,
        section="registry",
        totals=totals,
        shown=REGISTRY_ROWS,
        lists=lists,
    )


class _Listing(Protocol):
    """A registry kind's API, as the registry page reads it."""

    def list(self, project: str, *, limit: int | None = None) -> Sequence[Any]: ...

    def count(self, project: str) -> int: ...


#: The most rows of each kind the registry page shows, newest first (the CLI lists them all).
REGISTRY_ROWS = 50


PREVIEW_ROWS = 50
VersionOrNewest = Annotated[int | None, Query(ge=1, le=2**31 - 1)]


@router.get("/p/{project}/registry/datasets/{name}", include_in_schema=False)
def dataset(request: Request, project: str, name: str, version: VersionOrNewest = None) -> Response:
    """One dataset version: its stats per column and its first rows (untrusted text,
    escaped like everything else)."""
    page = page_of(request, project)
    datasets = page.scope.client.registry.datasets
    ref = name if version is None else f"{name}@{version}"
    info = datasets.get(page.project, ref)
    rows = datasets.rows(page.project, f"{info.name}@{info.version}")[:PREVIEW_ROWS]
    columns = list(info.schema_) or sorted({k for row in rows for k in row})
    stat_names = sorted({k for col in info.stats.values() if isinstance(col, dict) for k in col})
    return render(
        request,
        "dataset.html",
        page=page,
        section="registry",
        info=info,
        columns=columns,
        rows=[[_cell(row.get(c)) for c in columns] for row in rows],
        stat_names=stat_names,
        versions=[v.version for v in datasets.list(page.project, name=info.name)],
    )


def _cell(value: Any) -> str:
    """A value as text (JSON for what is not a string), cut at 500 characters."""
    import json

    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 500 else text[:500] + "…"


# ------------------------------------------------------------------ usage


Day = Annotated[date | None, Query()]


@router.get("/p/{project}/usage", include_in_schema=False)
def usage(request: Request, project: str, since: Day = None, until: Day = None) -> Response:
    """Showback by model and day, and tokens per day drawn as bars."""
    page = page_of(request, project)
    if since is not None and until is not None and since > until:
        raise ValidationError("since is after until: give the earlier day first", field="since")
    report = page.scope.client.usage.report(
        page.project, group_by=["model", "day"], since=since, until=until
    )
    return render(
        request,
        "usage.html",
        page=page,
        section="usage",
        report=report,
        bars=_bars(report.rows),
        since=since,
        until=until,
    )


def _bars(rows: list[UsageRow], height: int = 120) -> list[dict[str, Any]]:
    """Tokens per day as bars of an SVG (attributes, not styles: the CSP allows no inline
    style), tallest = ``height``."""
    per_day: dict[date, int] = {}
    for row in rows:
        if row.day is not None:
            per_day[row.day] = per_day.get(row.day, 0) + row.prompt_tokens + row.completion_tokens
    days = sorted(per_day)[-60:]
    top = max((per_day[d] for d in days), default=0) or 1
    return [
        {"day": d.isoformat(), "tokens": per_day[d], "h": round(height * per_day[d] / top), "x": i}
        for i, d in enumerate(days)
    ]


# ------------------------------------------------------------------ agents


Decided = Annotated[str | None, Query(max_length=200)]


@router.get("/p/{project}/agents", include_in_schema=False)
def agents(request: Request, project: str, decided: Decided = None) -> Response:
    """Recent agent runs (the newest as trees of their steps: model calls, tool calls and
    the sub-agents' steps under the call that asked them) and the tool calls that wait for
    a person's decision."""
    page = page_of(request, project)
    try:
        from agents import AgentRunner
    except ImportError as error:
        raise MissingDependencyError("agents", extra="agents", purpose="agent runs") from error
    runner = AgentRunner(
        page.scope.client, page.project, gateway="http://gateway.internal/v1", api_key=""
    )
    runs = runner.runs(limit=AGENT_RUNS)
    return render(
        request,
        "agents.html",
        page=page,
        section="agents",
        runs=runs,
        trees={r.run_id: tree_of(runner.steps(r.run_id), r.agent) for r in runs[:AGENT_TREES]},
        approvals=runner.approvals(status="pending"),
        can_decide=_role_at_least(page, Role.MAINTAINER),
        # only what the decision form itself says: a crafted link shows nothing of its own
        decided=decided if decided and _DECIDED.fullmatch(decided) else "",
    )


#: The newest agent runs listed, and how many of them are drawn as trees of their steps.
AGENT_RUNS, AGENT_TREES = 50, 10
_DECIDED = re.compile(r"(approved|rejected) [A-Za-z0-9_.:-]{1,64}")


def _role_at_least(page: Page, role: Role) -> bool:
    """Whether the caller's role is ``role`` or above (a platform admin's None is)."""
    mine = page.scope.client.projects.get(page.project).role
    return mine is None or mine >= role


# ------------------------------------------------------------------ audit

AuditAction = Annotated[str | None, Query(max_length=100)]


@router.get("/p/{project}/audit", include_in_schema=False)
def audit(request: Request, project: str, action: AuditAction = None) -> Response:
    """Who did what in the project, newest first (maintainers and owners; others are told
    which role reads it)."""
    page = page_of(request, project)
    chosen = action or None
    entries = section(lambda: page.scope.client.audit.list(page.project, action=chosen, limit=200))
    return render(
        request, "audit.html", page=page, section="audit", entries=entries, action=chosen or ""
    )


@router.get("/p/{project}/{rest:path}", include_in_schema=False)
def unknown(request: Request, project: str, rest: str) -> Response:
    """No such page: checked against the project first, so it is the same 404 either way."""
    page_of(request, project)
    raise NotFoundError(f"no Hub page {rest!r}")
