"""``genai agent run|resume``, ``genai agent runs list|show``, ``genai agent approvals
list|approve|reject|edit`` and ``genai agent mcp add|list|remove``: agents run through the
gateway as the caller."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.tree import Tree

from apps.cli._app import GatewayOpt, JsonOpt, ProjectOpt, app, client
from apps.cli._output import console, print_json, show_table
from genai.errors import ValidationError

if TYPE_CHECKING:
    from agents import AgentRunner, RunInfo
    from genai import Client

__all__ = ["agent_app"]

agent_app = typer.Typer(
    help="Agents: run them through the gateway, read their traces, decide approvals.",
    no_args_is_help=True,
)
runs_app = typer.Typer(help="Agent runs of a project.", no_args_is_help=True)
mcp_app = typer.Typer(help="MCP servers registered in a project.", no_args_is_help=True)
approvals_app = typer.Typer(help="Tool calls waiting for a person.", no_args_is_help=True)
agent_app.add_typer(runs_app, name="runs")
agent_app.add_typer(approvals_app, name="approvals")
agent_app.add_typer(mcp_app, name="mcp")
app.add_typer(agent_app, name="agent")

KeyOpt = typer.Option(
    ...,
    "--api-key",
    envvar="GENAI_API_KEY",
    help="A key of the project (or GENAI_API_KEY): the agent's model calls are made as it.",
)
ReadKeyOpt = typer.Option(
    "", "--api-key", envvar="GENAI_API_KEY", help="Not needed to read runs or decide approvals."
)


def _runner(c: Client, project: str, gateway: str, api_key: str) -> AgentRunner:
    from agents import AgentRunner

    return AgentRunner(c, project, gateway=gateway, api_key=api_key)


@agent_app.command("run")
def run_cmd(
    file: Path = typer.Argument(..., help="The agent: a YAML file (see agents.load_agent)."),
    question: str = typer.Argument(..., help="What to ask it."),
    project: str = ProjectOpt,
    gateway: str = GatewayOpt,
    api_key: str = KeyOpt,
    session: str | None = typer.Option(None, "--session", help="The conversation's id."),
    as_json: bool = JsonOpt,
) -> None:
    """Run the agent of FILE on QUESTION until it answers, stops at its budget, or waits."""
    from agents import load_agent

    agent = load_agent(file)
    with client() as c:
        run = _runner(c, project, gateway, api_key).run(agent, question, session=session)
        _present(c, project, run, as_json)


@agent_app.command("resume")
def resume_cmd(
    run_id: str = typer.Argument(..., help="The run (run_…)."),
    file: Path | None = typer.Argument(
        None, help="The agent's YAML file, as the run started it (a hosted run: none)."
    ),
    project: str = ProjectOpt,
    gateway: str = GatewayOpt,
    api_key: str = KeyOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Go on with a run that waited for approvals or whose process died. A hosted agent's
    run goes on with its deployment's agent, its model calls made with this key."""
    from agents import load_agent
    from apps._agent_target import deployed_agent

    with client() as c:
        runner = _runner(c, project, gateway, api_key)
        if file is not None:
            agent = load_agent(file)
        else:
            hosted_by = runner.get(run_id).definition.get("deployment")
            if not hosted_by:
                raise ValidationError(
                    f"agent run {run_id!r} was not started by a hosted agent: give the "
                    "agent's YAML file",
                    field="file",
                )
            agent = deployed_agent(c, project, str(hosted_by))
        run = runner.resume(run_id, agent)
        _present(c, project, run, as_json)


def _present(c: Client, project: str, run: RunInfo, as_json: bool) -> None:
    if as_json:
        print_json(run)
        return
    colour = "green" if run.status == "completed" else "yellow"
    console.print(
        f"[{colour}]{run.status}[/] {run.run_id}  {run.steps} model calls, "
        f"{run.tokens} tokens, ${run.cost_usd:.6f}"
    )
    if run.detail:
        console.print(f"  {escape(run.detail)}")
    if run.output:
        console.print(escape(run.output))
    if run.status == "awaiting_approval":
        for a in _runner(c, project, "", "").approvals(run_id=run.run_id):
            console.print(
                f"  waits: {a.call_id} {a.tool}({escape(json.dumps(dict(a.arguments)))}) — "
                f"`genai agent approvals approve {run.run_id} {a.call_id} -p {project}`"
            )


@runs_app.command("list")
def runs_list(
    project: str = ProjectOpt,
    status: str | None = typer.Option(None, "--status", help="Only runs with this status."),
    limit: int = typer.Option(50, "--limit", min=1, max=1000),
    as_json: bool = JsonOpt,
) -> None:
    """The project's agent runs, newest first."""
    with client() as c:
        rows = _runner(c, project, "", "").runs(limit=limit, status=status)
    show_table(
        f"agent runs of {project}",
        rows,
        [
            ("run", lambda r: r.run_id),
            ("agent", lambda r: r.agent),
            ("status", lambda r: r.status),
            ("steps", lambda r: r.steps),
            ("tokens", lambda r: r.tokens),
            ("cost $", lambda r: r.cost_usd),
            ("by", lambda r: r.created_by),
            ("started", lambda r: r.created_at),
        ],
        as_json=as_json,
    )


@runs_app.command("show")
def runs_show(
    run_id: str = typer.Argument(..., help="The run (run_…)."),
    project: str = ProjectOpt,
    as_json: bool = JsonOpt,
) -> None:
    """A run as a tree: each agent's model calls and the tool calls they asked for."""
    with client() as c:
        runner = _runner(c, project, "", "")
        run, steps = runner.get(run_id), runner.steps(run_id)
    if as_json:
        print_json({**dataclasses.asdict(run), "steps": steps})
        return
    tree = Tree(
        f"[bold]{run.run_id}[/] {run.agent}: {run.status} ({run.steps} model calls, "
        f"{run.tokens} tokens, ${run.cost_usd:.6f})"
    )
    branch = tree
    for step in steps:
        if step.kind == "model":
            calls = step.detail.get("tool_calls") or []
            said = step.detail.get("text") or ""
            what = f"{len(calls)} tool call(s)" if calls else repr(_short(said))
            branch = tree.add(
                f"[cyan]{step.agent}[/] → {step.name}: {step.status}, {what} "
                f"[dim]{step.detail.get('prompt_tokens', 0)}+"
                f"{step.detail.get('completion_tokens', 0)} tokens, {step.latency_ms:.0f} ms, "
                f"{step.detail.get('request_id') or ''}[/]"
            )
        else:
            branch.add(
                f"{'handoff' if step.kind == 'handoff' else 'tool'} {step.name}"
                f"({escape(_short(str(step.detail.get('arguments', ''))))}) → {step.status}: "
                f"{escape(_short(str(step.detail.get('result', ''))))}"
            )
    console.print(tree)
    if run.detail:
        console.print(f"[yellow]{escape(run.detail)}[/]")
    if run.output:
        console.print(escape(run.output))


@approvals_app.command("list")
def approvals_list(
    project: str = ProjectOpt,
    all_: bool = typer.Option(False, "--all", help="Decided ones too."),
    as_json: bool = JsonOpt,
) -> None:
    """Tool calls waiting for a decision (all decisions with --all)."""
    with client() as c:
        rows = _runner(c, project, "", "").approvals(status=None if all_ else "pending")
    show_table(
        f"approvals of {project}",
        rows,
        [
            ("run", lambda a: a.run_id),
            ("call", lambda a: a.call_id),
            ("tool", lambda a: a.tool),
            ("arguments", lambda a: dict(a.edited_arguments or a.arguments)),
            ("status", lambda a: a.status),
            ("by", lambda a: a.decided_by),
        ],
        as_json=as_json,
        empty="nothing waits",
    )


@approvals_app.command("approve")
def approvals_approve(
    run_id: str = typer.Argument(...),
    call_id: str | None = typer.Argument(None, help="The call (default: every one waiting)."),
    project: str = ProjectOpt,
    reason: str = typer.Option("", "--reason"),
) -> None:
    """Approve calls as the model asked for them; `genai agent resume` goes on."""
    with client() as c:
        runner = _runner(c, project, "", "")
        calls = [call_id] if call_id else [a.call_id for a in runner.approvals(run_id=run_id)]
        if not calls:
            raise ValidationError(f"no call of agent run {run_id!r} waits for approval")
        for call in calls:
            a = runner.approve(run_id, call, reason=reason)
            console.print(f"[green]✓[/] {a.call_id} {a.tool} approved")


@approvals_app.command("reject")
def approvals_reject(
    run_id: str = typer.Argument(...),
    call_id: str = typer.Argument(...),
    project: str = ProjectOpt,
    reason: str = typer.Option("", "--reason", help="Told to the model."),
) -> None:
    """Reject the call: the model is told (with the reason) when the run goes on."""
    with client() as c:
        a = _runner(c, project, "", "").reject(run_id, call_id, reason=reason)
    console.print(f"[green]✓[/] {a.call_id} {a.tool} rejected")


@approvals_app.command("edit")
def approvals_edit(
    run_id: str = typer.Argument(...),
    call_id: str = typer.Argument(...),
    arguments: str = typer.Option(..., "--arguments", help="The arguments to run it with (JSON)."),
    project: str = ProjectOpt,
    reason: str = typer.Option("", "--reason"),
) -> None:
    """Approve the call with other arguments."""
    try:
        edited = json.loads(arguments)
    except ValueError as error:
        raise ValidationError(f"--arguments is not JSON: {error}", field="arguments") from None
    if not isinstance(edited, dict):
        raise ValidationError("--arguments must be a JSON object", field="arguments")
    with client() as c:
        a = _runner(c, project, "", "").approve(run_id, call_id, arguments=edited, reason=reason)
    console.print(f"[green]✓[/] {a.call_id} {a.tool} approved with {escape(json.dumps(edited))}")


@mcp_app.command("add")
def mcp_add(
    name: str = typer.Argument(..., help="The name agents give it: mcp: {server: NAME}."),
    url: str = typer.Option(..., "--url", help="Its streamable HTTP endpoint (…/mcp)."),
    project: str = ProjectOpt,
    timeout_s: float = typer.Option(30.0, "--timeout-s", help="Seconds a call may take."),
    token_secret: str | None = typer.Option(
        None,
        "--token-secret",
        help="A project secret (`genai secret set`) sent as its bearer token.",
    ),
) -> None:
    """Register an MCP server for the project's agents (owners)."""
    from agents import MCPServers

    with client() as c:
        info = MCPServers(c).add(
            project, name, url=url, timeout_s=timeout_s, token_secret=token_secret
        )
    console.print(f"[green]✓[/] MCP server {info.name} → {escape(info.url)} in {project}")


@mcp_app.command("list")
def mcp_list(project: str = ProjectOpt, as_json: bool = JsonOpt) -> None:
    """The project's registered MCP servers."""
    from agents import MCPServers

    with client() as c:
        rows = MCPServers(c).list(project)
    show_table(
        f"MCP servers of {project}",
        rows,
        [
            ("name", lambda r: r.name),
            ("url", lambda r: r.url),
            ("timeout s", lambda r: r.timeout_s),
            ("token", lambda r: f"secret {r.token_secret}" if r.token_secret else ""),
        ],
        as_json=as_json,
        empty="none registered",
    )


@mcp_app.command("remove")
def mcp_remove(name: str = typer.Argument(...), project: str = ProjectOpt) -> None:
    """Unregister an MCP server (owners); agents that name it then fail to start."""
    from agents import MCPServers

    with client() as c:
        MCPServers(c).remove(project, name)
    console.print(f"[green]✓[/] MCP server {name} removed from {project}")


def _short(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
