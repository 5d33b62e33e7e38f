"""``genai project|user|key|quota|usage|audit``: AI Projects from the command line."""

from __future__ import annotations

from datetime import date
from operator import attrgetter

import typer
from rich.markup import escape

from apps.cli._app import JsonOpt, ProjectOpt, app, client
from apps.cli._output import console, print_json, show_record, show_table
from genai.errors import ValidationError
from genai.tenancy import GROUPS, ApiKeyInfo, UsageReport

project_app = typer.Typer(help="Create, list, show and delete AI Projects.", no_args_is_help=True)
member_app = typer.Typer(
    help="Who belongs to a project, and with which role.", no_args_is_help=True
)
user_app = typer.Typer(help="Platform users (admins only).", no_args_is_help=True)
key_app = typer.Typer(help="A project's API keys.", no_args_is_help=True)
quota_app = typer.Typer(help="A project's quotas.", no_args_is_help=True)
usage_app = typer.Typer(help="The usage ledger and showback.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit log.", no_args_is_help=True)

app.add_typer(project_app, name="project")
project_app.add_typer(member_app, name="member")
app.add_typer(user_app, name="user")
app.add_typer(key_app, name="key")
app.add_typer(quota_app, name="quota")
app.add_typer(usage_app, name="usage")
app.add_typer(audit_app, name="audit")

RoleOpt = typer.Option(..., "--role", "-r", help="viewer, developer, maintainer or owner.")


# ------------------------------------------------------------------ projects


@project_app.command("create")
def project_create(
    name: str = typer.Argument(..., help="3-40 lower-case letters, digits and hyphens."),
    description: str = typer.Option("", "--description", "-d"),
) -> None:
    """Create a project; you become its owner."""
    with client() as c:
        info = c.projects.create(name, description=description)
    console.print(f"[green]✓[/] project {info.name} created; you are its owner")


@project_app.command("list")
def project_list(as_json: bool = JsonOpt) -> None:
    """The projects you belong to (every project, for admins)."""
    with client() as c:
        rows = c.projects.list()
    show_table(
        "projects",
        rows,
        [
            ("name", lambda p: p.name),
            ("your role", lambda p: p.role or "admin"),
            ("members", lambda p: p.members),
            ("created", lambda p: p.created_at),
            ("description", lambda p: p.description),
        ],
        as_json=as_json,
        empty="none yet: create one with `genai project create NAME`",
    )


@project_app.command("show")
def project_show(name: str, as_json: bool = JsonOpt) -> None:
    with client() as c:
        info = c.projects.get(name)
    show_record(f"project {name}", info, as_json=as_json)


@project_app.command("delete")
def project_delete(
    name: str,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete a project and everything in it (keys, registry entries, usage)."""
    if not yes:
        typed = typer.prompt(f"This deletes project {name} and everything in it. Type its name")
        if typed != name:
            raise ValidationError(f"{typed!r} is not {name!r}: nothing was deleted")
    with client() as c:
        c.projects.delete(name)
    console.print(f"[green]✓[/] project {name} deleted")


@member_app.command("add")
def member_add(
    name: str = typer.Argument(..., help="A user name, or a service account name with --service."),
    project: str = ProjectOpt,
    role: str = RoleOpt,
    service: bool = typer.Option(False, "--service", help="A service account of this project."),
) -> None:
    """Give a user (or service account) a role in a project, or change it."""
    with client() as c:
        info = c.projects.add_member(project, name, role=role, service=service)
    console.print(f"[green]✓[/] {info.kind} {info.name} is {info.role.value} in {project}")


@member_app.command("remove")
def member_remove(
    name: str,
    project: str = ProjectOpt,
    service: bool = typer.Option(False, "--service"),
) -> None:
    """Remove a member; their keys for the project are revoked."""
    with client() as c:
        c.projects.remove_member(project, name, service=service)
    console.print(f"[green]✓[/] {name} removed from {project}; their keys there are revoked")


@member_app.command("list")
def member_list(project: str = ProjectOpt, as_json: bool = JsonOpt) -> None:
    with client() as c:
        rows = c.projects.members(project)
    show_table(
        f"members of {project}",
        rows,
        [
            ("name", lambda m: m.name),
            ("kind", lambda m: m.kind),
            ("role", lambda m: m.role),
            ("since", lambda m: m.since),
        ],
        as_json=as_json,
    )


# ------------------------------------------------------------------ users


@user_app.command("add")
def user_add(name: str, admin: bool = typer.Option(False, "--admin")) -> None:
    """Register a user (and make them a platform admin with --admin)."""
    with client() as c:
        info = c.users.add(name, admin=admin)
    console.print(f"[green]✓[/] user {info.name}" + (" (platform admin)" if info.is_admin else ""))


@user_app.command("list")
def user_list(as_json: bool = JsonOpt) -> None:
    with client() as c:
        rows = c.users.list()
    show_table(
        "users",
        rows,
        [
            ("name", lambda u: u.name),
            ("admin", lambda u: u.is_admin),
            ("created", lambda u: u.created_at),
        ],
        as_json=as_json,
    )


# ------------------------------------------------------------------ keys


@key_app.command("create")
def key_create(
    project: str = ProjectOpt,
    role: str = RoleOpt,
    name: str = typer.Option("default", "--name", "-n", help="A label for the key."),
    expires_in: str | None = typer.Option(None, "--expires-in", help="e.g. 90d, 12h, 2w."),
    service_account: str | None = typer.Option(
        None, "--service-account", help="Issue the key to this service account of the project."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Create an API key. It is printed once and never stored: copy it now."""
    with client() as c:
        key = c.keys.create(
            project, role=role, name=name, expires_in=expires_in, service_account=service_account
        )
    if as_json:
        print_json(key)
        return
    console.print(
        f"[green]✓[/] key {key.prefix} ({key.role.value} in {project}, owner {key.owner})"
    )
    if key.expires_at:
        console.print(f"  expires {key.expires_at:%Y-%m-%d %H:%M} UTC")
    console.print("  the key, shown once:")
    console.print(f"  [bold]{escape(key.secret)}[/bold]")


def _key_columns() -> list[tuple[str, object]]:
    return [
        ("id", lambda k: k.id),
        ("prefix", lambda k: k.prefix),
        ("name", lambda k: k.name),
        ("role", lambda k: k.role),
        ("owner", lambda k: k.owner),
        ("status", lambda k: k.status),
        ("created", lambda k: k.created_at),
        ("expires", lambda k: k.expires_at),
    ]


@key_app.command("list")
def key_list(
    project: str = ProjectOpt,
    all_keys: bool = typer.Option(False, "--all", help="Include revoked keys."),
    as_json: bool = JsonOpt,
) -> None:
    with client() as c:
        rows: list[ApiKeyInfo] = c.keys.list(project, include_revoked=all_keys)
    show_table(f"keys of {project}", rows, _key_columns(), as_json=as_json)  # type: ignore[arg-type]


@key_app.command("revoke")
def key_revoke(
    key: str = typer.Argument(..., help="The key's prefix (gk_xxxxxxxxxx), id, or the key."),
    project: str = ProjectOpt,
) -> None:
    with client() as c:
        info = c.keys.revoke(project, key)
    console.print(f"[green]✓[/] key {info.prefix} revoked")


# ------------------------------------------------------------------ quotas


def _limit(text: str | None, cast: type) -> object:
    if text is None:
        return ...
    if text.lower() in ("none", "unlimited", "off"):
        return None
    try:
        return cast(text)
    except ValueError:
        raise ValidationError(f"{text!r} is not a number (or 'none' for unlimited)") from None


@quota_app.command("show")
def quota_show(project: str = ProjectOpt, as_json: bool = JsonOpt) -> None:
    with client() as c:
        status = c.quotas.get(project)
    show_record(f"quotas of {project}", status, as_json=as_json)


@quota_app.command("set")
def quota_set(
    project: str = ProjectOpt,
    rpm: str | None = typer.Option(None, "--rpm", help="Requests per minute, or 'none'."),
    tokens_per_day: str | None = typer.Option(None, "--tokens-per-day"),
    budget_usd: str | None = typer.Option(None, "--budget-usd", help="USD per month."),
    adapter_slots: str | None = typer.Option(None, "--adapter-slots"),
    max_in_flight: str | None = typer.Option(
        None,
        "--max-in-flight",
        help="Requests in progress at once per gateway process, or 'none' (the gateway's "
        "GENAI_GATEWAY_MAX_IN_FLIGHT_PER_PROJECT applies when lower).",
    ),
    gpus: str | None = typer.Option(
        None, "--gpus", help="GPUs its Kubernetes deployments may request in all, or 'none'."
    ),
) -> None:
    """Change the limits given; 'none' makes one unlimited."""
    changes = {
        "requests_per_minute": _limit(rpm, int),
        "tokens_per_day": _limit(tokens_per_day, int),
        "budget_usd_per_month": _limit(budget_usd, float),
        "adapter_slots": _limit(adapter_slots, int),
        "max_in_flight": _limit(max_in_flight, int),
        "gpus": _limit(gpus, int),
    }
    given = {k: v for k, v in changes.items() if v is not ...}
    if not given:
        raise ValidationError(
            "name a limit to set: --rpm, --tokens-per-day, --budget-usd, --adapter-slots, "
            "--max-in-flight, --gpus"
        )
    with client() as c:
        limits = c.quotas.set(project, **given)  # type: ignore[arg-type]
    console.print(
        f"[green]✓[/] quotas of {project}: "
        + ", ".join(
            f"{k}={'unlimited' if v is None else v}" for k, v in limits.model_dump().items()
        )
    )


# ------------------------------------------------------------------ usage and audit


def print_usage(report: UsageReport, *, as_json: bool) -> None:
    if as_json:
        print_json(report)
        return
    columns = [(g, attrgetter(g)) for g in report.group_by] + [
        ("requests", lambda r: r.requests),
        ("prompt tok", lambda r: r.prompt_tokens),
        ("compl. tok", lambda r: r.completion_tokens),
        ("cost $", lambda r: f"{r.cost_usd:.4f}"),
        ("gpu s", lambda r: r.gpu_seconds),
        ("cache hits", lambda r: r.cache_hits),
        ("errors", lambda r: r.errors),
        ("avg ms", lambda r: r.avg_latency_ms),
    ]
    show_table("usage", [*report.rows], columns, as_json=False, empty="no requests recorded yet")
    t = report.total
    console.print(
        f"total: {t.requests} requests, {t.prompt_tokens + t.completion_tokens} tokens, "
        f"${t.cost_usd:.4f}, {t.cache_hits} cache hits, {t.errors} errors"
    )


@usage_app.command("report")
def usage_report(
    project: str | None = typer.Option(None, "--project", "-p", envvar="GENAI_PROJECT"),
    by: str = typer.Option(",".join(GROUPS), "--by", help="Comma-separated: " + ", ".join(GROUPS)),
    since: str | None = typer.Option(None, help="First day, YYYY-MM-DD (UTC)."),
    until: str | None = typer.Option(None, help="Last day, YYYY-MM-DD (UTC)."),
    as_json: bool = JsonOpt,
) -> None:
    """Showback: requests, tokens, cost and GPU time per project, model, adapter and day."""
    with client() as c:
        report = c.usage.report(
            project,
            group_by=[g.strip() for g in by.split(",") if g.strip()],
            since=_day(since, "since"),
            until=_day(until, "until"),
        )
    print_usage(report, as_json=as_json)


def _day(text: str | None, field: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValidationError(
            f"--{field} {text!r} is not a date: use YYYY-MM-DD", field=field
        ) from None


@audit_app.command("list")
def audit_list(
    project: str | None = typer.Option(None, "--project", "-p", envvar="GENAI_PROJECT"),
    action: str | None = typer.Option(None, help="Only this action, e.g. key.create."),
    limit: int = typer.Option(50, min=1),
    as_json: bool = JsonOpt,
) -> None:
    """Who did what, newest first."""
    with client() as c:
        rows = c.audit.list(project, action=action, limit=limit)
    show_table(
        "audit log",
        rows,
        [
            ("time", lambda e: e.ts),
            ("actor", lambda e: e.actor),
            ("project", lambda e: e.project),
            ("action", lambda e: e.action),
            ("resource", lambda e: e.resource),
            ("details", lambda e: e.details or ""),
        ],
        as_json=as_json,
    )
