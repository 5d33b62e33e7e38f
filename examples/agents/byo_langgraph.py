"""Bring your own LangGraph agent: a graph you wrote, governed by the gateway.

Nothing here is genai-platform code. The graph is plain LangGraph (a model node, LangGraph's
``ToolNode`` and a loop between them); the one platform-specific line is the model client,
``ChatOpenAI`` pointed at the gateway with a project key. Every model call the graph makes
is then an ordinary gateway request: the key is checked, the project's quotas and DLP
policy apply, and each call is a row in the project's usage ledger. The tools run here, in
your process.

    export GENAI_GATEWAY_URL=http://127.0.0.1:4000/v1   # the gateway
    export GENAI_API_KEY=gk_...                          # a key of your project
    python examples/agents/byo_langgraph.py chat "What is 2 + 3?"

The first argument (or ``GENAI_DEPLOYMENT``) names a deployment of the project whose model
can call tools. Needs ``langgraph`` and ``langchain-openai``.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

DEFAULT_GATEWAY = "http://127.0.0.1:4000/v1"


@tool
def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: The first integer.
        b: The second integer.
    """
    return a + b


TOOLS = [add]


def build_graph(model: ChatOpenAI) -> Any:
    """model -> (tools -> model)* -> end: the model node calls the LLM with the tools bound;
    while it asks for tool calls, ``ToolNode`` runs them and hands the results back."""
    llm = model.bind_tools(TOOLS)

    def call_model(state: MessagesState) -> dict[str, list[BaseMessage]]:
        return {"messages": [llm.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("model", call_model)
    graph.add_node("tools", ToolNode(TOOLS))
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", tools_condition)  # to "tools" or to the end
    graph.add_edge("tools", "model")
    return graph.compile()


@dataclass
class Answer:
    text: str  # the model's final answer
    tool_results: list[str] = field(default_factory=list)  # what the tools returned, in order


def run(gateway: str, api_key: str, deployment: str, question: str) -> Answer:
    """Ask the graph ``question``; every model call goes to ``gateway`` as ``api_key``."""
    model = ChatOpenAI(base_url=gateway, api_key=api_key, model=deployment)
    state = build_graph(model).invoke({"messages": [HumanMessage(question)]})
    messages: list[BaseMessage] = state["messages"]
    final = messages[-1]
    assert isinstance(final, AIMessage), final
    return Answer(
        text=final.text,
        tool_results=[str(m.content) for m in messages if isinstance(m, ToolMessage)],
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
