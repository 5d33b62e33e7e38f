"""What an agent is: a name, a model (a deployment of the project), instructions, tools,
agents it hands the conversation to, and a budget — plain frozen dataclasses, checked when
built, so a mistake is a clear error before the first model call.

    support = Agent(
        name="support",
        model="chat",                       # a deployment (or chat:ADAPTER) of the project
        instructions="Answer from the tools' results; say when you do not know.",
        tools=[lookup_order, refund],
        budget=Budget(max_steps=8, max_cost_usd=0.05),
    )

``handoffs`` are agents this one may pass the conversation to (the model calls a
``transfer_to_<name>`` tool); the run goes on with that agent's instructions and tools, and
one budget spans them all. A handoff given as a name refers to an agent elsewhere in the
team (how two agents hand back and forth: ``Agent(name="triage", handoffs=["billing"])``
and ``Agent(name="billing", handoffs=[triage])``). A cycle of handoffs is allowed and
bounded by the budget (steps and loop detection).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agents._tools import Tool

if TYPE_CHECKING:
    from agents._mcp import MCPServer
    from agents._platform import PlatformTool
from genai.errors import ValidationError

__all__ = ["HANDOFF_PREFIX", "Agent", "Budget"]

#: Handoff tools are named ``transfer_to_<agent>``; sub-agents are asked through ``ask_<agent>``.
HANDOFF_PREFIX = "transfer_to_"
ASK_PREFIX = "ask_"
_AGENT_NAME = re.compile(r"[A-Za-z0-9_-]{1,50}")  # it becomes part of a tool name


@dataclass(frozen=True)
class Budget:
    """Limits of one run, its handoffs included; the run stops at the first one reached,
    with that limit as its status (``max_steps``, ``max_tool_calls``, ``max_tokens``,
    ``max_cost``, ``max_wall_time``, ``loop_detected``).

    ``max_steps`` counts model calls; ``max_tool_calls`` all tool calls together and
    ``max_calls_per_tool`` each named tool's; ``max_tokens`` prompt and completion tokens
    of every model call; ``max_cost_usd`` what the gateway charged; ``max_wall_s`` seconds
    of the run's own work (time spent waiting for an approval does not count); a tool called
    with the same arguments ``loop_limit`` times ends the run as a loop. None: no limit. A
    limit of 0 stops the run before its first call.
    """

    max_steps: int = 10
    max_tool_calls: int | None = None
    max_calls_per_tool: Mapping[str, int] = field(default_factory=dict)
    max_tokens: int | None = None
    max_cost_usd: float | None = None
    max_wall_s: float | None = None
    loop_limit: int = 3

    def __post_init__(self) -> None:
        for name in ("max_steps", "max_tool_calls", "max_tokens", "loop_limit"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValidationError(f"budget {name} must be a whole number, not {value!r}")
            if value is not None and value < 0:
                raise ValidationError(f"budget {name} must be 0 or more, not {value}", field=name)
        if self.loop_limit < 1:
            raise ValidationError(
                "budget loop_limit must be 1 or more: the number of identical calls that ends "
                "the run",
                field="loop_limit",
            )
        for name in ("max_cost_usd", "max_wall_s"):
            value = getattr(self, name)
            if value is not None and (not math.isfinite(float(value)) or value < 0):
                raise ValidationError(f"budget {name} must be 0 or more, not {value!r}", field=name)
        for tool, cap in self.max_calls_per_tool.items():
            if isinstance(cap, bool) or not isinstance(cap, int) or cap < 0:
                raise ValidationError(
                    f"budget max_calls_per_tool[{tool!r}] must be 0 or more, not {cap!r}",
                    field="max_calls_per_tool",
                )

    def as_dict(self) -> dict[str, Any]:
        return {
            "max_steps": self.max_steps,
            "max_tool_calls": self.max_tool_calls,
            "max_calls_per_tool": dict(self.max_calls_per_tool),
            "max_tokens": self.max_tokens,
            "max_cost_usd": self.max_cost_usd,
            "max_wall_s": self.max_wall_s,
            "loop_limit": self.loop_limit,
        }


@dataclass(frozen=True)
class Agent:
    """An agent (see the module's docstring). ``model`` is a deployment of the project,
    ``NAME`` or ``NAME:ADAPTER``; ``params`` go into every chat request as they are
    (``temperature``, ``max_tokens``...); ``budget`` is the run's when this agent starts it.
    ``mcp_servers`` add their tools (listed when a run starts, closed when it stops), and
    so do the servers registered in the run's project that ``registered_mcp`` names;
    ``platform_tools`` read the platform as the run's caller (:mod:`agents._platform`);
    ``agents`` are sub-agents this one asks as tools (``ask_<name>`` with a ``request``):
    each answers from its own conversation and the run's one budget, and the answer
    comes back as the tool's result (a supervisor);
    ``members`` are further agents of the team that handoffs given by name may name (how a
    YAML team of agents that hand back and forth is built)."""

    name: str
    model: str
    instructions: str = ""
    tools: Sequence[Tool] = ()
    handoffs: Sequence[Agent | str] = ()
    budget: Budget = field(default_factory=Budget)
    params: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    mcp_servers: Sequence[MCPServer] = ()
    registered_mcp: Sequence[str] = ()
    platform_tools: Sequence[PlatformTool] = ()
    agents: Sequence[Agent] = ()
    members: Sequence[Agent] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _AGENT_NAME.fullmatch(self.name):
            raise ValidationError(
                f"invalid agent name {self.name!r}: use 1-50 letters, digits, '_' or '-' "
                "(it becomes part of the handoff tool's name)",
                field="name",
            )
        if not self.model.strip():
            raise ValidationError(
                f"agent {self.name!r} names no model: give a deployment of the project",
                field="model",
            )
        object.__setattr__(self, "tools", tuple(self.tools))
        object.__setattr__(self, "handoffs", tuple(self.handoffs))
        object.__setattr__(self, "mcp_servers", tuple(self.mcp_servers))
        object.__setattr__(self, "registered_mcp", tuple(self.registered_mcp))
        object.__setattr__(self, "platform_tools", tuple(self.platform_tools))
        object.__setattr__(self, "agents", tuple(self.agents))
        object.__setattr__(self, "members", tuple(self.members))
        names = [t.name for t in self.tools] + [HANDOFF_PREFIX + n for n in self.handoff_names]
        names += [ASK_PREFIX + a.name for a in self.agents]
        clash = sorted({n for n in names if names.count(n) > 1})
        if clash:
            raise ValidationError(
                f"agent {self.name!r} has two tools named {clash[0]!r}: tool names must be "
                "unique within an agent (handoffs are named transfer_to_<agent>)",
                field="tools",
            )
        for key in ("model", "messages", "tools", "stream", "tool_choice"):
            if key in self.params:
                raise ValidationError(
                    f"agent {self.name!r} sets {key!r} in params: the engine sets it",
                    field="params",
                )

    @property
    def handoff_names(self) -> list[str]:
        return [h if isinstance(h, str) else h.name for h in self.handoffs]

    def tool(self, name: str) -> Tool | None:
        for candidate in self.tools:
            if candidate.name == name:
                return candidate
        return None

    def handoff(self, tool_name: str) -> str | None:
        """The agent a handoff tool's name passes the conversation to, if it is one."""
        for other in self.handoff_names:
            if HANDOFF_PREFIX + other == tool_name:
                return other
        return None

    def subagent(self, tool_name: str) -> str | None:
        """The sub-agent an ``ask_<name>`` tool asks, if it is one."""
        for other in self.agents:
            if ASK_PREFIX + other.name == tool_name:
                return other.name
        return None

    def tool_specs(self) -> list[dict[str, Any]]:
        """The OpenAI ``tools`` of a request of this agent: its tools, its sub-agents, then
        its handoffs."""
        specs = [t.spec() for t in self.tools]
        for sub in self.agents:
            specs.append(
                {
                    "type": "function",
                    "function": {
                        "name": ASK_PREFIX + sub.name,
                        "description": f"Ask {sub.description or 'agent ' + sub.name}; "
                        "it answers from its own tools.",
                        "parameters": {
                            "type": "object",
                            "properties": {
                                "request": {"type": "string", "description": "What to ask."}
                            },
                            "required": ["request"],
                        },
                    },
                }
            )
        for other in self.handoffs:
            name = other if isinstance(other, str) else other.name
            about = (None if isinstance(other, str) else other.description) or f"agent {name}"
            specs.append(
                {
                    "type": "function",
                    "function": {
                        "name": HANDOFF_PREFIX + name,
                        "description": f"Hand the conversation over to {about}.",
                        "parameters": {"type": "object", "properties": {}},
                    },
                }
            )
        return specs

    def team(self) -> dict[str, Agent]:
        """Every agent reachable through handoffs and sub-agents, by name (this one
        included); two different agents with one name are an error."""
        found: dict[str, Agent] = {}
        for agent in _walk(self):
            seen = found.get(agent.name)
            if seen is not None and seen is not agent:
                raise ValidationError(
                    f"two different agents are named {agent.name!r} in {self.name!r}'s team: "
                    "agent names must be unique in a run",
                    field="handoffs",
                )
            found[agent.name] = agent
        for agent in found.values():
            for name in agent.handoff_names:
                if name not in found:
                    raise ValidationError(
                        f"agent {agent.name!r} hands off to {name!r}, which is not an agent of "
                        f"{self.name!r}'s team: give the Agent itself somewhere in the team",
                        field="handoffs",
                    )
        return found

    def describe(self) -> dict[str, Any]:
        """The definition a run keeps (what a person reads in ``genai agent runs show``)."""
        return {
            "name": self.name,
            "model": self.model,
            "instructions": self.instructions,
            "tools": [t.name for t in self.tools],
            "handoffs": self.handoff_names,
            "agents": [a.name for a in self.agents],
            "mcp_servers": [server.name for server in self.mcp_servers]
            + [f"registered:{name}" for name in self.registered_mcp],
            "platform_tools": [tool.kind for tool in self.platform_tools],
            "budget": self.budget.as_dict(),
            "params": dict(self.params),
        }


def _walk(root: Agent) -> Iterator[Agent]:
    stack, seen = [root], set()
    while stack:
        agent = stack.pop()
        if id(agent) in seen:
            continue
        seen.add(id(agent))
        yield agent
        stack.extend(h for h in agent.handoffs if not isinstance(h, str))
        stack.extend(agent.agents)
        stack.extend(agent.members)
