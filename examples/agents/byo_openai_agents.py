"""Bring your own OpenAI Agents SDK agent: an agent you wrote, governed by the gateway.

Nothing here is genai-platform code. The agent is a plain OpenAI Agents SDK agent with a
``@function_tool``; the platform-specific part is its model, ``OpenAIChatCompletionsModel``
on an ``AsyncOpenAI`` client pointed at the gateway with a project key. Every model call the
agent makes is then an ordinary gateway request: the key is checked, the project's quotas
and DLP policy apply, and each call is a row in the project's usage ledger. The tools run
here, in your process.

    pip install openai-agents
    export GENAI_GATEWAY_URL=http://127.0.0.1:4000/v1   # the gateway
    export GENAI_API_KEY=gk_...                          # a key of your project
    python examples/agents/byo_openai_agents.py chat "What is 2 + 3?"

The first argument (or ``GENAI_DEPLOYMENT``) names a deployment of the project whose model
can call tools.

The SDK's import name is ``agents``, as is this repository's own package: run it from an
environment where genai-platform's ``agents`` is not importable (outside a checkout of the
repository, or ``python -I``), or the SDK's imports fail.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

from openai import AsyncOpenAI

from agents import (
    Agent,
    OpenAIChatCompletionsModel,
    Runner,
    ToolCallOutputItem,
    function_tool,
    set_tracing_disabled,
)

DEFAULT_GATEWAY = "http://127.0.0.1:4000/v1"

# The SDK exports a trace of every run to OpenAI's servers unless told not to. Off: nothing
# goes to OpenAI; the gateway is the only place the agent's model calls reach (and its usage
# ledger the record of them).
set_tracing_disabled(True)


@function_tool
def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: The first integer.
        b: The second integer.
    """
    return a + b


@dataclass
class Answer:
    text: str  # the agent's final answer
    tool_results: list[str] = field(default_factory=list)  # what the tools returned, in order


def run(gateway: str, api_key: str, deployment: str, question: str) -> Answer:
    """Ask the agent ``question``; every model call goes to ``gateway`` as ``api_key``."""
    client = AsyncOpenAI(base_url=gateway, api_key=api_key)
    agent = Agent(
        name="calculator",
        instructions="Answer arithmetic questions; use the add tool to add.",
        model=OpenAIChatCompletionsModel(model=deployment, openai_client=client),
        tools=[add],
    )
    result = Runner.run_sync(agent, question)
    return Answer(
        text=str(result.final_output),
        tool_results=[
            str(item.output) for item in result.new_items if isinstance(item, ToolCallOutputItem)
        ],
    )


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    deployment = args[0] if args else os.environ.get("GENAI_DEPLOYMENT", "chat")
    question = args[1] if len(args) > 1 else "What is 2 + 3? Use the add tool."
    answer = run(
        os.environ.get("GENAI_GATEWAY_URL", DEFAULT_GATEWAY),
        os.environ["GENAI_API_KEY"],
        deployment,
        question,
    )
    for result in answer.tool_results:
        print(f"[tool] {result}")
    print(answer.text)


if __name__ == "__main__":
    main()
