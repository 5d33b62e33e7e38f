"""``genai dlp``: find personal data in a file, redact it, and set a project's policy.

genai dlp scan notes.txt --json          entities found, with spans and scores
cat notes.txt | genai dlp redact -       <EMAIL_ADDRESS> for every e-mail address ...
genai dlp redact data.jsonl --policy dlp.yaml -o clean.jsonl
genai dlp policy set support dlp.yaml    the project's policy (owners)
genai dlp policy show support
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import tempfile
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from apps.cli._app import JsonOpt, app, client, settings
from apps.cli._output import console, err, print_json
from genai.dlp import POLICY_EXAMPLE, Dlp, DlpKeys, Policy, ProjectPolicies, load_keys
from genai.errors import ConfigError, UsageError

dlp_app = typer.Typer(
    help="Data loss prevention: scan, redact, and set a project's DLP policy.",
    no_args_is_help=True,
)
policy_app = typer.Typer(help="A project's DLP policy.", no_args_is_help=True)
app.add_typer(dlp_app, name="dlp")
dlp_app.add_typer(policy_app, name="policy")

SourceArg = typer.Argument(..., metavar="FILE|-", help="A text file, or - for standard input.")
PolicyOpt = typer.Option(
    None,
    "--policy",
    help="A DLP policy file (YAML or JSON); see `genai dlp policy show --example`.",
)
ProjectUseOpt = typer.Option(
    None, "--project", "-p", help="Use this project's policy (and its salt for `hash`)."
)


def _read(source: str) -> str:
    if source == "-":
        return sys.stdin.read()
    path = Path(source).expanduser()
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"no such file: {source} (give a text file, or - for stdin)") from None
    except UnicodeDecodeError:
        raise UsageError(f"{source} is not UTF-8 text: DLP reads text files only") from None
    except OSError as error:
        raise UsageError(f"cannot read {source}: {error.strerror}") from None


def _policy(policy_file: Path | None, project: str | None, default: Policy) -> tuple[Policy, int]:
    """The policy to apply and the project id that salts hashes (0 without a project)."""
    if policy_file is not None and project is not None:
        raise UsageError("give --policy or --project, not both")
    if policy_file is not None:
        return Policy.load(policy_file), 0
    if project is None:
        return default, 0
    with client() as c:
        policies = ProjectPolicies(c)
        found, project_id = policies.get(project), policies.project_id(project)
    if found is None:
        raise ConfigError(
            f"project {project!r} has no DLP policy (or has DLP off): set one with "
            f"`genai dlp policy set {project} FILE`, or give --policy"
        )
    return found, project_id


def _line_col(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


@dlp_app.command("scan")
def scan(
    source: str = SourceArg,
    as_json: bool = JsonOpt,
    policy_file: Path | None = PolicyOpt,
    project: str | None = ProjectUseOpt,
    show_text: bool = typer.Option(
        False, "--show-text", help="Print what was found too (it is personal data)."
    ),
) -> None:
    """List the personal data found: entity type, span, score and recognizer."""
    text = _read(source)
    policy, _ = _policy(policy_file, project, Policy(threshold=0.0))
    cfg = settings()
    dlp = Dlp(keys=DlpKeys(secrets.token_bytes(32)), ner=cfg.dlp_ner)  # scanning keeps nothing
    threshold = policy.min_threshold
    findings = [f for f in dlp.detect([text], policy)[0] if f.score >= threshold]
    rows = []
    for f in findings:
        line, column = _line_col(text, f.start)
        row: dict[str, object] = {
            "entity_type": f.entity_type,
            "start": f.start,
            "end": f.end,
            "line": line,
            "column": column,
            "score": round(f.score, 4),
            "recognizer": f.recognizer,
        }
        if show_text:
            row["text"] = text[f.start : f.end]
        rows.append(row)
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("[dim]no personal data found[/dim]")
        return
    table = Table(title=f"{len(rows)} found in {source}", title_justify="left")
    for name in rows[0]:
        table.add_column(name)
    for row in rows:
        table.add_row(*(escape(str(value)) for value in row.values()))
    console.print(table)


@dlp_app.command("redact")
def redact(
    source: str = SourceArg,
    policy_file: Path | None = PolicyOpt,
    project: str | None = ProjectUseOpt,
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write here (atomically) instead of standard output."
    ),
) -> None:
    """Write the text with personal data handled by a policy (default: every entity
    redacted as <ENTITY_TYPE>). Pseudonyms are consistent within the file, and kept
    nowhere."""
    text = _read(source)
    policy, project_id = _policy(policy_file, project, Policy(default_action="redact"))
    cfg = settings()
    dlp = Dlp(keys=load_keys(cfg), ner=cfg.dlp_ner)
    where = "standard input" if source == "-" else source
    [clean] = dlp.anonymize([text], policy, project_id=project_id, where=where).texts
    if output is None:
        sys.stdout.write(clean)
        sys.stdout.flush()
        return
    _write_atomically(output, clean)
    err.print(f"[green]✓[/] wrote {escape(str(output))}")


def _write_atomically(path: Path, text: str) -> None:
    path = path.expanduser()
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


# ------------------------------------------------------------------ policy


@policy_app.command("show")
def policy_show(
    project: str | None = typer.Argument(None, help="The project (omit with --example)."),
    as_json: bool = JsonOpt,
    example: bool = typer.Option(False, "--example", help="Print an example policy file."),
) -> None:
    """The project's DLP policy (every setting, defaults included)."""
    if example:
        sys.stdout.write(POLICY_EXAMPLE)
        return
    if project is None:
        raise UsageError("name a project: `genai dlp policy show PROJECT` (or give --example)")
    with client() as c:
        found = ProjectPolicies(c).get(project)
    if as_json:
        print_json(found.to_dict() if found is not None else None)
        return
    if found is None:
        default = settings().dlp_policy
        console.print(
            f"project {project} sets no DLP policy: "
            + (f"the platform's ({default}) applies" if default else "DLP is off for it")
        )
        return
    sys.stdout.write(json.dumps(found.to_dict(), indent=2) + "\n")


@policy_app.command("set")
def policy_set(
    project: str = typer.Argument(..., help="The project."),
    policy_file: Path | None = typer.Argument(None, metavar="[FILE]", help="YAML or JSON."),
    off: bool = typer.Option(False, "--off", help="Turn DLP off for the project."),
) -> None:
    """Set the project's DLP policy from a file (project owners); gateways apply it within
    their key-cache TTL."""
    if (policy_file is None) == (not off):
        raise UsageError("give a policy FILE, or --off (not both)")
    with client() as c:
        if off:
            ProjectPolicies(c).disable(project)
            console.print(f"[green]✓[/] DLP is off for project {project}")
            return
        assert policy_file is not None
        policy = Policy.load(policy_file)
        ProjectPolicies(c).set(project, policy)
    rules = ", ".join(f"{name}: {rule.action}" for name, rule in sorted(policy.entities.items()))
    console.print(
        f"[green]✓[/] DLP policy of project {project} set: default {policy.default_action}"
        + (f"; {rules}" if rules else "")
        + ("; fails open" if policy.fail_open else "; fails closed")
    )
