"""An agent run's trace as a tree, for the agents page: the steps the store keeps (model
calls, tool calls, handoffs and sub-agent calls, in order, each with the agent that made
it) nested under the call that started their agent.

The trace is flat: a sub-agent's own steps follow the parent's ``ask_<agent>`` step (kind
``agent``), a handed-off agent's follow the ``transfer_to_<agent>`` step (kind
``handoff``). Walking it with a stack of the agents open so far puts each step under the
latest call of its agent; a step of an agent no call started stays at the top level.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Node", "tree_of"]

#: The tool-name prefixes of calls that start another agent (``agents._agent``'s names).
_STARTS = {"agent": "ask_", "handoff": "transfer_to_"}
#: The most characters of a step's detail shown (the CLI's ``genai agent show`` has all).
DETAIL_CHARS = 600


@dataclass
class Node:
    """One step and the steps of the agent it started (``children``)."""

    index: int
    kind: str  # model | tool | agent | handoff
    name: str
    agent: str
    status: str
    latency_ms: float
    detail: str
    children: list[Node] = field(default_factory=list)

    @property
    def count(self) -> int:
        """This step and every step under it."""
        return 1 + sum(child.count for child in self.children)


def _detail(detail: Any) -> str:
    text = json.dumps(detail, ensure_ascii=False, sort_keys=True, default=str)
    return text if len(text) <= DETAIL_CHARS else text[:DETAIL_CHARS] + "…"


def _started(step: Any) -> str | None:
    """The agent a step starts (a sub-agent call or a handoff), if it starts one."""
    prefix = _STARTS.get(step.kind)
    if prefix and step.name.startswith(prefix):
        return str(step.name[len(prefix) :])
    return None


def tree_of(steps: Sequence[Any], agent: str) -> list[Node]:
    """The run's steps (``agents.StepInfo``, by index) nested; ``agent`` is the run's own."""
    top: list[Node] = []
    # (agent, where its steps go): the run's agent at the bottom, then the calls open now
    stack: list[tuple[str, list[Node]]] = [(agent, top)]
    started: dict[str, list[Node]] = {}  # the latest call that started each agent
    for step in sorted(steps, key=lambda s: s.index):
        node = Node(
            index=step.index,
            kind=step.kind,
            name=step.name,
            agent=step.agent,
            status=step.status,
            latency_ms=float(step.latency_ms or 0.0),
            detail=_detail(step.detail),
        )
        names = [name for name, _ in stack]
        if step.agent in names:  # back to an agent already open: close what it called
            del stack[len(names) - names[::-1].index(step.agent) :]
        elif step.agent in started:  # the first step of an agent a call started
            stack.append((step.agent, started.pop(step.agent)))
        else:  # an agent nothing started: at the top
            stack = [(agent, top), (step.agent, top)]
        stack[-1][1].append(node)
        child = _started(step)
        if child is not None:
            started[child] = node.children
    return top
