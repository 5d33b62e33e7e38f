"""Agents: tool-using and multi-agent apps whose every model call goes through the gateway,
with budgets that hold, approvals, durable runs and MCP.

    import agents

    @agents.tool
    def order_status(order_id: str) -> str:
        \"\"\"The shipping status of an order.

        Args:
            order_id: The order's number, e.g. "A-1042".
        \"\"\"
        return lookup(order_id)

    support = agents.Agent(name="support", model="chat", tools=[order_status],
                           budget=agents.Budget(max_steps=6))
    runner = agents.AgentRunner(client, "shop", gateway="http://127.0.0.1:4000/v1", api_key=key)
    run = runner.run(support, "Where is order A-1042?")

The engine is LangGraph (checkpoints in the platform's store: SQLite or PostgreSQL); MCP
servers come in through the official ``mcp`` SDK. It may import ``rag``, ``prompts`` and
``genai``. The runner, the checkpointer and MCP load LangGraph and the SDKs when first named.
"""

import importlib
from typing import TYPE_CHECKING, Any

from agents._agent import HANDOFF_PREFIX, Agent, Budget
from agents._platform import PLATFORM_TOOLS, PlatformTool
from agents._records import ApprovalInfo, RunInfo, StepInfo
from agents._tools import Tool, ToolOutcome, function_tool, tool
from agents._wire import ModelTurn, StreamAssembler, ToolCallRequest, parse_message

if TYPE_CHECKING:
    from agents._checkpoint import StoreCheckpointer
    from agents._engine import STOP_STATUSES, AgentEvent
    from agents._mcp import MCPServer
    from agents._mcp_registry import MCPServerInfo, MCPServers
    from agents._runner import AgentRunner
    from agents._yaml import agent_from_dict, load_agent

__all__ = [
    "HANDOFF_PREFIX",
    "PLATFORM_TOOLS",
    "STOP_STATUSES",
    "Agent",
    "AgentEvent",
    "AgentRunner",
    "ApprovalInfo",
    "Budget",
    "MCPServer",
    "MCPServerInfo",
    "MCPServers",
    "ModelTurn",
    "PlatformTool",
    "RunInfo",
    "StepInfo",
    "StoreCheckpointer",
    "StreamAssembler",
    "Tool",
    "ToolCallRequest",
    "ToolOutcome",
    "agent_from_dict",
    "function_tool",
    "load_agent",
    "parse_message",
    "tool",
]

_LAZY = {
    "AgentRunner": "agents._runner",
    "MCPServer": "agents._mcp",
    "MCPServerInfo": "agents._mcp_registry",
    "MCPServers": "agents._mcp_registry",
    "StoreCheckpointer": "agents._checkpoint",
    "STOP_STATUSES": "agents._engine",
    "AgentEvent": "agents._engine",
    "agent_from_dict": "agents._yaml",
    "load_agent": "agents._yaml",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'agents' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
