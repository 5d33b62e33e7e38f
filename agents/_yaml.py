"""Agents written in YAML, for ``genai agent run`` and for hosting.

    # support.yaml
    name: support
    model: chat                        # a deployment of the project
    instructions: Answer from the tools' results.
    tools:
      - python: shop_tools:order_status   # MODULE:NAME, a @tool or a plain function
      - python: shop_tools:refund
        requires_approval: true
        side_effects: true
      - mcp: {name: files, command: python, args: [files_server.py]}
      - mcp: {name: search, url: "http://127.0.0.1:8931/mcp"}
      - mcp: {server: orders}           # registered in the project (genai agent mcp add)
      - {platform: kb_search, kb: docs}   # platform tools read as the caller
    handoffs: [billing]                # pass the conversation on (transfer_to_billing)
    asks: [researcher]                 # ask as a tool (ask_researcher), answer yourself
    budget: {max_steps: 8, max_cost_usd: 0.05}
    params: {temperature: 0}
    agents:                            # the rest of the team, same shape
      - {name: billing, model: chat, instructions: "You handle refunds.", handoffs: [support]}
      - {name: researcher, model: chat, tools: [{platform: kb_search, kb: docs}]}

``python:`` tools are imported with the file's directory first on ``sys.path`` (as pytest
finds a test's helpers). Loading a file runs that module's code: load only files you would
run. Every mistake is a :class:`~genai.errors.ValidationError` naming the field.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticError

from agents._agent import Agent, Budget
from agents._mcp import MCPServer
from agents._platform import PlatformTool
from agents._tools import Tool, function_tool
from genai.errors import ValidationError
from genai.validation import first_problem

__all__ = ["agent_from_dict", "load_agent"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Mcp(_Strict):
    name: str | None = None
    server: str | None = None  # one registered in the run's project
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(default=30.0, gt=0)


class _ToolRef(_Strict):
    python: str | None = None
    mcp: _Mcp | None = None
    platform: str | None = None
    kb: str | None = None
    k: int | None = Field(default=None, ge=1, le=50)
    requires_approval: bool | None = None
    side_effects: bool | None = None
    timeout_s: float | None = Field(default=None, gt=0)
    max_result_chars: int | None = Field(default=None, ge=1)


class _Budget(_Strict):
    max_steps: int = Field(default=10, ge=0)
    max_tool_calls: int | None = Field(default=None, ge=0)
    max_calls_per_tool: dict[str, int] = Field(default_factory=dict)
    max_tokens: int | None = Field(default=None, ge=0)
    max_cost_usd: float | None = Field(default=None, ge=0)
    max_wall_s: float | None = Field(default=None, ge=0)
    loop_limit: int = Field(default=3, ge=1)


class _AgentSpec(_Strict):
    name: str
    model: str
    instructions: str = ""
    description: str = ""
    tools: list[_ToolRef] = Field(default_factory=list)
    handoffs: list[str] = Field(default_factory=list)
    asks: list[str] = Field(default_factory=list)
    budget: _Budget = Field(default_factory=_Budget)
    params: dict[str, Any] = Field(default_factory=dict)


class _TeamSpec(_AgentSpec):
    agents: list[_AgentSpec] = Field(default_factory=list)


def load_agent(path: str | Path) -> Agent:
    """The agent (and its team) of a YAML file (see the module's docstring)."""
    import yaml

    file = Path(path)
    try:
        document = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as error:
        raise ValidationError(f"cannot read agent file {str(file)!r}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ValidationError(f"agent file {str(file)!r} is not valid YAML: {error}") from None
    if not isinstance(document, Mapping):
        raise ValidationError(f"agent file {str(file)!r} must hold a mapping (name, model, ...)")
    return agent_from_dict(document, base=file.resolve().parent)


def agent_from_dict(
    document: Mapping[str, Any],
    *,
    base: Path | None = None,
    python_modules: Collection[str] | None = None,
    mcp_stdio: bool = True,
) -> Agent:
    """An agent from a parsed YAML/JSON document; ``python:`` tools resolve from ``base``.

    Where the definition comes from someone other than who runs it (a hosted agent: a
    deployment's options, run by the gateway), ``python_modules`` lists the modules (and
    packages, with their submodules) whose tools it may import, and ``mcp_stdio=False``
    refuses MCP servers run as commands: both would run code on the host."""
    policy = _Policy(python_modules, mcp_stdio)
    try:
        spec = _TeamSpec.model_validate(document)
    except PydanticError as error:
        where, what = first_problem(error, "agent")
        raise ValidationError(f"agent definition: {where}: {what}", field=where) from None
    names = [spec.name, *(a.name for a in spec.agents)]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate is not None:
        raise ValidationError(f"two agents are named {duplicate!r}: names must be unique")
    built = _with_subagents(
        {a.name: a for a in [spec, *spec.agents]},
        {a.name: _build(a, base, policy) for a in [spec, *spec.agents]},
    )
    # handoffs are names: the rest of the team hangs on the root as its members
    others = [a for n, a in built.items() if n != spec.name]
    root = dataclasses.replace(built[spec.name], members=others)
    root.team()  # every handoff names an agent of the file
    return root


def _with_subagents(specs: dict[str, _AgentSpec], built: dict[str, Agent]) -> dict[str, Agent]:
    """The agents with the sub-agents they ask (``asks``) attached, those first: a cycle
    of agents asking each other could never end, so it is refused."""
    done: dict[str, Agent] = {n: a for n, a in built.items() if not specs[n].asks}
    while len(done) < len(built):
        ready = [n for n in built if n not in done and all(x in done for x in specs[n].asks)]
        if not ready:
            waiting = sorted(n for n in built if n not in done)
            unknown = sorted({x for n in waiting for x in specs[n].asks} - set(built))
            if unknown:
                raise ValidationError(f"agent asks {unknown[0]!r}, which the file does not define")
            raise ValidationError(f"agents {waiting} ask each other in a cycle: it could never end")
        for name in ready:
            asked = [done[x] for x in specs[name].asks]
            done[name] = dataclasses.replace(built[name], agents=asked)
    return done


@dataclass(frozen=True)
class _Policy:
    python_modules: Collection[str] | None
    mcp_stdio: bool

    def check_module(self, module: str, where: str) -> None:
        allowed = self.python_modules
        if allowed is None:
            return
        if not any(module == m or module.startswith(m + ".") for m in allowed):
            listed = ", ".join(sorted(allowed)) or "none"
            raise ValidationError(
                f"{where}: python tools of module {module!r} are not allowed here (allowed: "
                f"{listed}); the operator lists them in GENAI_AGENT_TOOL_MODULES"
            )


def _build(spec: _AgentSpec, base: Path | None, policy: _Policy) -> Agent:
    tools: list[Tool] = []
    servers: list[MCPServer] = []
    registered: list[str] = []
    platform: list[PlatformTool] = []
    for number, ref in enumerate(spec.tools):
        where = f"{spec.name}.tools[{number}]"
        if sum(x is not None for x in (ref.python, ref.mcp, ref.platform)) != 1:
            raise ValidationError(
                f"{where}: give one of python: MODULE:NAME, mcp: {{...}} or platform: NAME"
            )
        if ref.platform is not None:
            options = {k: v for k, v in (("kb", ref.kb), ("k", ref.k)) if v is not None}
            try:
                platform.append(PlatformTool(ref.platform, options))
            except ValidationError as error:
                raise ValidationError(f"{where}: {error}", field="tools") from None
        elif ref.python is not None:
            tools.append(_python_tool(ref, where, base, policy))
        elif ref.mcp is not None and ref.mcp.server is not None:
            if ref.mcp.name or ref.mcp.command or ref.mcp.url:
                raise ValidationError(
                    f"{where}: mcp: {{server: NAME}} names a registered server; give no "
                    "name, command or url with it"
                )
            registered.append(ref.mcp.server)
        elif ref.mcp is not None:
            if ref.mcp.command is not None and not policy.mcp_stdio:
                raise ValidationError(
                    f"{where}: MCP servers run as commands are not allowed here (use a url; "
                    "the operator allows commands with GENAI_AGENT_MCP_STDIO=1)"
                )
            servers.append(_mcp_server(ref.mcp, where))
    return Agent(
        name=spec.name,
        model=spec.model,
        instructions=spec.instructions,
        description=spec.description,
        tools=tools,
        mcp_servers=servers,
        registered_mcp=registered,
        platform_tools=platform,
        handoffs=list(spec.handoffs),
        budget=Budget(**spec.budget.model_dump()),
        params=spec.params,
    )


def _python_tool(ref: _ToolRef, where: str, base: Path | None, policy: _Policy) -> Tool:
    assert ref.python is not None
    module_name, _, attribute = ref.python.partition(":")
    if not module_name or not attribute:
        raise ValidationError(f"{where}: python: {ref.python!r} must be MODULE:NAME")
    policy.check_module(module_name, where)
    if base is not None and str(base) not in sys.path:
        sys.path.insert(0, str(base))
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValidationError(f"{where}: cannot import {module_name!r}: {error}") from None
    found = getattr(module, attribute, None)
    if found is None:
        raise ValidationError(f"{where}: module {module_name!r} has no {attribute!r}")
    tool = found if isinstance(found, Tool) else function_tool(found) if callable(found) else None
    if tool is None:
        raise ValidationError(f"{where}: {ref.python!r} is neither a tool nor a function")
    overrides = {
        k: v
        for k, v in ref.model_dump(
            include={"requires_approval", "side_effects", "timeout_s", "max_result_chars"}
        ).items()
        if v is not None
    }
    return dataclasses.replace(tool, **overrides)


def _mcp_server(spec: _Mcp, where: str) -> MCPServer:
    if not spec.name:
        raise ValidationError(f"{where}: an mcp server needs a name (or server: a registered one)")
    if (spec.command is None) == (spec.url is None):
        raise ValidationError(f"{where}: an mcp server has a command (stdio) or a url, not both")
    if spec.command is not None:
        return MCPServer.stdio(
            spec.name, spec.command, spec.args, spec.env or None, timeout_s=spec.timeout_s
        )
    assert spec.url is not None
    return MCPServer.http(spec.name, spec.url, spec.headers or None, timeout_s=spec.timeout_s)
