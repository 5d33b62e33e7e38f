"""Agents written in YAML: tools by import path, MCP servers, teams, and what a hosted
definition may not name."""

from __future__ import annotations

from pathlib import Path

import pytest

import agents
from genai.errors import ValidationError

TOOLS = '''
import agents


@agents.tool
def lookup(order: str) -> str:
    """An order's state."""
    return order


def refund(order: str, amount: float) -> str:
    """Refund an order."""
    return order
'''


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "yaml_shop_tools.py").write_text(TOOLS)
    monkeypatch.syspath_prepend(str(tmp_path))  # undone (and the module dropped) after the test
    monkeypatch.delitem(__import__("sys").modules, "yaml_shop_tools", raising=False)
    return tmp_path


def test_a_team_with_python_and_mcp_tools(folder: Path) -> None:
    (folder / "support.yaml").write_text(
        """
name: support
model: chat
instructions: Be brief.
tools:
  - python: yaml_shop_tools:lookup
  - python: yaml_shop_tools:refund
    requires_approval: yes
    side_effects: yes
  - mcp: {name: files, command: python, args: [server.py]}
  - mcp: {name: search, url: "http://127.0.0.1:9/mcp"}
handoffs: [billing]
budget: {max_steps: 4, max_cost_usd: 0.5, max_calls_per_tool: {refund: 1}}
params: {temperature: 0}
agents:
  - {name: billing, model: chat, handoffs: [support]}
"""
    )
    agent = agents.load_agent(folder / "support.yaml")
    assert [t.name for t in agent.tools] == ["lookup", "refund"]
    refund = agent.tool("refund")
    assert refund is not None and refund.requires_approval and refund.side_effects
    assert refund.parameters["required"] == ["order", "amount"]
    assert [s.name for s in agent.mcp_servers] == ["files", "search"]
    assert agent.budget.max_calls_per_tool == {"refund": 1} and agent.budget.max_steps == 4
    team = agent.team()
    assert sorted(team) == ["billing", "support"] and team["billing"].handoff_names == ["support"]
    assert [s["function"]["name"] for s in agent.tool_specs()][-1] == "transfer_to_billing"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"name": "a"}, "model: Field required"),
        ({"name": "a", "model": "m", "tools": [{}]}, "give one of python"),
        ({"name": "a", "model": "m", "tools": [{"python": "nocolon"}]}, "MODULE:NAME"),
        ({"name": "a", "model": "m", "tools": [{"python": "no_such_mod:f"}]}, "cannot import"),
        ({"name": "a", "model": "m", "tools": [{"python": "json:nothing"}]}, "has no 'nothing'"),
        ({"name": "a", "model": "m", "handoffs": ["ghost"]}, "not an agent of"),
        ({"name": "a", "model": "m", "budget": {"max_steps": -1}}, "budget.max_steps"),
        ({"name": "a", "model": "m", "agents": [{"name": "a", "model": "m"}]}, "two agents"),
        (
            {"name": "a", "model": "m", "tools": [{"mcp": {"name": "x"}}]},
            r"command \(stdio\) or a url",
        ),
        ({"name": "a", "model": "m", "colour": "red"}, "colour"),
    ],
)
def test_mistakes_name_the_field(document: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        agents.agent_from_dict(document)


def test_a_hosted_definition_may_name_only_allowed_modules_and_no_commands(folder: Path) -> None:
    python = {"name": "a", "model": "m", "tools": [{"python": "yaml_shop_tools:lookup"}]}
    with pytest.raises(ValidationError, match="GENAI_AGENT_TOOL_MODULES"):
        agents.agent_from_dict(python, python_modules=())
    allowed = agents.agent_from_dict(python, python_modules=("yaml_shop_tools",))
    assert [t.name for t in allowed.tools] == ["lookup"]
    stdio = {"name": "a", "model": "m", "tools": [{"mcp": {"name": "x", "command": "sh"}}]}
    with pytest.raises(ValidationError, match="GENAI_AGENT_MCP_STDIO"):
        agents.agent_from_dict(stdio, mcp_stdio=False)


def test_a_file_that_is_not_a_mapping_or_not_yaml(tmp_path: Path) -> None:
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ValidationError, match="must hold a mapping"):
        agents.load_agent(tmp_path / "list.yaml")
    (tmp_path / "bad.yaml").write_text("name: [unclosed\n")
    with pytest.raises(ValidationError, match="not valid YAML"):
        agents.load_agent(tmp_path / "bad.yaml")
    with pytest.raises(ValidationError, match="cannot read"):
        agents.load_agent(tmp_path / "missing.yaml")


def test_sub_agents_by_name_and_no_cycles() -> None:
    team = agents.agent_from_dict(
        {
            "name": "boss",
            "model": "m",
            "asks": ["writer"],
            "agents": [
                {"name": "writer", "model": "m", "asks": ["researcher"]},
                {"name": "researcher", "model": "m"},
            ],
        }
    )
    assert [a.name for a in team.agents] == ["writer"]
    assert [a.name for a in team.agents[0].agents] == ["researcher"]
    assert [s["function"]["name"] for s in team.tool_specs()] == ["ask_writer"]
    cycle = {
        "name": "a",
        "model": "m",
        "asks": ["b"],
        "agents": [{"name": "b", "model": "m", "asks": ["a"]}],
    }
    with pytest.raises(ValidationError, match="cycle"):
        agents.agent_from_dict(cycle)
    with pytest.raises(ValidationError, match="does not define"):
        agents.agent_from_dict({"name": "a", "model": "m", "asks": ["ghost"]})
