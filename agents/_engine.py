"""The agent loop as a LangGraph graph: ``model`` (one chat completion through the gateway)
and ``tools`` (the calls the model asked for), checkpointed after every step in the
platform's store, so a run whose process died goes on from its last step.

    START → model ─(tool calls)→ tools ─→ model … ─(an answer, or a budget reached)→ END

The budget is checked before every model call and before a turn's tool calls run: a run
stops at the first limit reached with that limit as its status, never a step later. A tool
that needs a person's approval pauses the run (LangGraph's ``interrupt``); the decision
lives in the store, so an approval given after a restart resumes it the same way.

Replaying a step after a crash repeats no side effect: a side-effecting tool call is claimed
by its call id before it runs and its outcome kept when it ends (an approved or rejected
call's too); a replayed step takes the outcome from there, and a call claimed but never
finished is reported to the model as of unknown outcome instead of run again (at most
once). Tools without side effects are simply run again by a replayed step.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from agents._agent import Agent, Budget
from agents._records import RunRecords, ToolCallRecord
from agents._state import (
    OUTCOMES,
    STOP_STATUSES,
    AgentEvent,
    Asked,
    CallFailed,
    Plan,
    RunState,
    budget_stop,
    cut,
    kept,
    object_of,
    signature,
    status_message,
    step_dict,
    tool_budget,
    trace_of,
    wall_message,
)
from agents._subagents import ask
from agents._tools import ToolOutcome
from agents._wire import ModelTurn, ToolCallRequest, parse_message
from genai.gateway import span

__all__ = ["STOP_STATUSES", "AgentEvent", "Engine", "RunState", "trace_of"]


@dataclass
class Engine:
    """One run's graph and what its nodes use: the team of agents, the budget, the
    gateway's client (an ``openai.AsyncOpenAI`` with the project's key), the run's rows,
    and a clock (seconds; injected in tests)."""

    run_id: str
    team: Mapping[str, Agent]
    budget: Budget
    client: Any  # openai.AsyncOpenAI
    records: RunRecords
    clock: Callable[[], float]
    session: str | None = None
    base_elapsed: float = 0.0
    started: float = field(default=0.0)
    on_event: Callable[[AgentEvent], Awaitable[None]] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    checkpointer: Any = None  # sub-agents' runs are checkpointed with it too
    durability: str = "sync"

    async def _emit(self, event: AgentEvent) -> None:
        if self.on_event is not None:
            await self.on_event(event)

    def graph(self, checkpointer: Any) -> Any:
        """The compiled graph with ``checkpointer``, its nodes running this engine's steps
        (the graph is compiled once per process; a run's engine reaches its nodes through
        a context variable set here, in the task that runs the graph)."""
        _ENGINE.set(self)
        self.checkpointer = checkpointer
        return _compiled().copy(update={"checkpointer": checkpointer})

    def recursion_limit(self) -> int:
        """LangGraph's superstep limit, above what the budget allows (the budget ends a run
        first, with its own status)."""
        return 2 * self.budget.max_steps + 10

    def elapsed(self) -> float:
        return self.base_elapsed + (self.clock() - self.started)

    # ---------------------------------------------------------------- model

    async def _model(self, state: RunState) -> dict[str, Any]:
        if state.get("status"):
            return {}
        stop = budget_stop(self.budget, state, self.elapsed())
        if stop is not None:
            return stop
        agent = self.team[state.get("agent") or next(iter(self.team))]
        messages = list(state.get("messages", []))
        if agent.instructions:
            messages.insert(0, {"role": "system", "content": agent.instructions})
        request: dict[str, Any] = {"model": agent.model, "messages": messages, **agent.params}
        specs = agent.tool_specs()
        if specs:
            request["tools"] = specs
        headers = dict(self.headers)
        if self.session:
            headers["x-genai-session"] = self.session
        index = state.get("trace", 0)
        began = self.clock()
        attributes = {"genai.agent_run": self.run_id, "genai.agent": agent.name}
        try:
            with span("agent.model", {**attributes, "genai.deployment": agent.model}) as traced:
                turn, cost, request_id = await self._call(request, headers)
                if traced is not None:
                    traced.set_attribute("genai.request_id", request_id or "")
                    traced.set_attribute(
                        "genai.tokens", turn.prompt_tokens + turn.completion_tokens
                    )
        except CallFailed as failure:
            step = self._step(
                index,
                "model",
                agent.model,
                agent.name,
                failure.status,
                {"error": failure.message},
                began,
            )
            return {
                "status": failure.status,
                "detail": failure.message,
                "trace": index + 1,
                "log": [step],
                "elapsed_s": self.elapsed(),
            }
        detail = {
            "request_id": request_id,
            "prompt_tokens": turn.prompt_tokens,
            "completion_tokens": turn.completion_tokens,
            "cost_usd": cost,
            "finish_reason": turn.finish_reason,
            "text": cut(turn.text),
            "tool_calls": [
                {"id": c.id, "name": c.name, "arguments": cut(c.arguments)} for c in turn.tool_calls
            ],
        }
        step = self._step(index, "model", agent.model, agent.name, "ok", detail, began)
        if turn.text:
            await self._emit(AgentEvent("text", agent.name, content=turn.text))
        for call in turn.tool_calls:
            await self._emit(
                AgentEvent("tool_call", agent.name, call.name, call.id, call.arguments)
            )
        update: dict[str, Any] = {
            "messages": [turn.assistant_message()],
            "steps": state.get("steps", 0) + 1,
            "tokens": state.get("tokens", 0) + turn.prompt_tokens + turn.completion_tokens,
            "cost_usd": state.get("cost_usd", 0.0) + cost,
            "trace": index + 1,
            "log": [step],
            "elapsed_s": self.elapsed(),
        }
        if turn.tool_calls:
            update["pending"] = [
                {"id": c.id, "name": c.name, "arguments": c.arguments} for c in turn.tool_calls
            ]
        else:
            update.update(status="completed", detail="", output=turn.text, pending=[])
        return update

    async def _call(
        self, request: dict[str, Any], headers: dict[str, str]
    ) -> tuple[ModelTurn, float, str | None]:
        import httpx
        import openai

        remaining = self._remaining_wall()
        options: dict[str, Any] = {"headers": headers}
        if remaining is not None:
            options["timeout"] = max(remaining, 0.001)
        try:  # the SDK's retries and errors, without its typed request models' transform
            raw = await self.client.post(
                "/chat/completions", cast_to=httpx.Response, body=request, options=options
            )
        except openai.APITimeoutError:
            if remaining is not None:
                raise CallFailed("max_wall_time", wall_message(self.budget)) from None
            raise CallFailed(
                "failed", f"the model {request['model']!r} did not answer in time"
            ) from None
        except openai.APIStatusError as error:
            raise CallFailed("failed", status_message(request, error)) from None
        except openai.APIConnectionError as error:
            raise CallFailed("failed", f"the gateway could not be reached: {error}") from None
        body = json.loads(raw.content)
        turn = parse_message(body)
        try:
            cost = float(raw.headers.get("x-genai-cost-usd") or 0.0)
        except ValueError:
            cost = 0.0
        return turn, cost, raw.headers.get("x-request-id")

    # ---------------------------------------------------------------- tools

    async def _tools(self, state: RunState) -> dict[str, Any]:
        from langgraph.types import interrupt

        agent = self.team[state.get("agent") or next(iter(self.team))]
        calls = [
            ToolCallRequest(c["id"], c["name"], c["arguments"]) for c in state.get("pending", [])
        ]
        counts = dict(state.get("tool_counts", {}))
        signatures = dict(state.get("signatures", {}))
        total = state.get("tool_total", 0)
        stop = tool_budget(self.budget, calls, counts, signatures, total)
        if stop is not None:
            return {**stop, "elapsed_s": self.elapsed()}
        for call in calls:
            counts[call.name] = counts.get(call.name, 0) + 1
            key = signature(call)
            signatures[key] = signatures.get(key, 0) + 1
        total += len(calls)
        while True:  # a resumed approval re-checks the store: decisions live there
            ids = [c.id for c in calls if kept(agent.tool(c.name))]
            done = await asyncio.to_thread(self.records.tool_calls, self.run_id, ids) if ids else {}
            plans = [await self._plan(agent, call, done.get(call.id)) for call in calls]
            waiting = [p for p in plans if p.waiting]
            if not waiting:
                break
            await asyncio.gather(*(self._execute(p) for p in plans if p.runnable))
            interrupt({"approvals": [p.call.id for p in waiting]})
        ran = iter(await asyncio.gather(*(self._execute(p) for p in plans if not p.subagent)))
        asked = Asked(
            steps=state.get("steps", 0),
            tokens=state.get("tokens", 0),
            cost_usd=state.get("cost_usd", 0.0),
            tool_total=total,
        )
        outcomes = []
        for plan in plans:  # sub-agents one at a time, on the one budget
            if plan.subagent is None:
                outcomes.append(next(ran))
            elif asked.stop is not None:
                outcomes.append(ToolOutcome("error", "not asked: the run's budget is spent"))
            else:
                while (outcome := await ask(self, plan, asked)) is None:
                    interrupt({"approvals": f"sub-agent {plan.subagent} waits for approval"})
                outcomes.append(outcome)
        index = state.get("trace", 0)
        messages, next_agent, steps = [], agent.name, []
        for offset, (plan, outcome) in enumerate(zip(plans, outcomes, strict=True)):
            if plan.handoff is not None and next_agent == agent.name:
                next_agent = plan.handoff
            messages.append(
                {"role": "tool", "tool_call_id": plan.call.id, "content": outcome.content}
            )
            detail = {
                "id": plan.call.id,
                "arguments": cut(plan.call.arguments),
                "result": cut(outcome.content),
            }
            kind = "handoff" if plan.handoff else "agent" if plan.subagent else "tool"
            steps.append(
                step_dict(
                    index + offset, kind, plan.call.name, agent.name, outcome.status, detail, 0.0
                )
            )
            event = "handoff" if plan.handoff is not None else "tool_result"
            await self._emit(
                AgentEvent(
                    event,
                    agent.name,
                    plan.call.name,
                    plan.call.id,
                    content=outcome.content,
                    status=outcome.status,
                )
            )
        for number, entry in enumerate(asked.log):  # the sub-agents' own steps
            steps.append({**entry, "index": index + len(plans) + number})
        update: dict[str, Any] = {
            "log": steps,
            "messages": messages,
            "agent": next_agent,
            "tool_counts": counts,
            "signatures": signatures,
            "tool_total": asked.tool_total,
            "steps": asked.steps,
            "tokens": asked.tokens,
            "cost_usd": asked.cost_usd,
            "pending": [],
            "trace": index + len(plans) + len(asked.log),
            "elapsed_s": self.elapsed(),
        }
        if asked.stop is not None:  # a sub-agent reached the run's one budget
            update.update(asked.stop)
        return update

    async def _plan(self, agent: Agent, call: ToolCallRequest, done: ToolCallRecord | None) -> Plan:
        sub = agent.subagent(call.name)
        if sub is not None:
            return Plan(call, None, subagent=sub)
        handoff = agent.handoff(call.name)
        if handoff is not None:
            return Plan(
                call, None, handoff=handoff, fixed=ToolOutcome("ok", f"Transferred to {handoff}.")
            )
        found = agent.tool(call.name)
        if found is None:
            names = ", ".join(t["function"]["name"] for t in agent.tool_specs()) or "none"
            message = f"unknown tool {call.name!r}: this agent's tools are {names}"
            return Plan(call, None, fixed=ToolOutcome("invalid_arguments", message))
        if done is not None and done.status != "started":
            status = done.status if done.status in OUTCOMES else "error"
            return Plan(call, found, fixed=ToolOutcome(status, done.result))  # type: ignore[arg-type]
        if done is not None:  # claimed before a crash, never finished: never run twice
            message = (
                f"the outcome of this call of {call.name!r} is unknown: the run stopped while "
                "it ran, and a side-effecting tool is not run twice; check before retrying"
            )
            return Plan(call, found, fixed=ToolOutcome("error", message), record_as="unknown")
        arguments = call.parsed() or {}
        if found.requires_approval:
            approval = await asyncio.to_thread(
                self.records.ask_approval, self.run_id, call.id, call.name, arguments
            )
            if approval.status == "pending":
                return Plan(call, found, waiting=True)
            if approval.status == "rejected":
                reason = f": {approval.reason}" if approval.reason else ""
                message = f"a person rejected this call of {call.name!r}{reason}; do not retry it"
                return Plan(call, found, fixed=ToolOutcome("error", message), record_as="rejected")
            if approval.edited_arguments is not None:
                return Plan(call, found, arguments=json.dumps(approval.edited_arguments))
        return Plan(call, found)

    async def _execute(self, plan: Plan) -> ToolOutcome:
        if plan.fixed is not None:
            if plan.record_as is not None:
                await asyncio.to_thread(
                    self.records.finish_tool_call,
                    self.run_id,
                    plan.call.id,
                    plan.call.name,
                    plan.call.parsed() or {},
                    status=plan.record_as,
                    result=plan.fixed.content,
                )
            return plan.fixed
        assert plan.tool is not None and not plan.waiting
        tool = plan.tool
        arguments = plan.arguments if plan.arguments is not None else plan.call.arguments
        as_object = object_of(arguments)
        if tool.side_effects:
            claimed = await asyncio.to_thread(
                self.records.start_tool_call, self.run_id, plan.call.id, tool.name, as_object
            )
            if not claimed:
                return ToolOutcome(
                    "error", f"the call of {tool.name!r} already ran; it is not run twice"
                )
        remaining = self._remaining_wall()
        if remaining is not None and remaining < tool.timeout_s:
            tool = dataclasses.replace(tool, timeout_s=max(remaining, 0.001))
        attributes = {"genai.agent_run": self.run_id, "genai.tool": tool.name}
        with span("agent.tool", attributes) as traced:
            outcome = await tool.invoke(arguments)
            if traced is not None:
                traced.set_attribute("genai.status", outcome.status)
        if tool.side_effects or plan.arguments is not None:  # what a replay must not redo
            await asyncio.to_thread(
                self.records.finish_tool_call,
                self.run_id,
                plan.call.id,
                tool.name,
                as_object,
                status=outcome.status,
                result=outcome.content,
            )
        plan.fixed = outcome
        return outcome

    # ---------------------------------------------------------------- budget

    def _remaining_wall(self) -> float | None:
        if self.budget.max_wall_s is None:
            return None
        return self.budget.max_wall_s - self.elapsed()

    def _step(
        self,
        index: int,
        kind: str,
        name: str,
        agent: str,
        status: str,
        detail: dict[str, Any],
        began: float | None,
    ) -> dict[str, Any]:
        latency = 0.0 if began is None else (self.clock() - began) * 1000
        return step_dict(index, kind, name, agent, status, detail, latency)


_ENGINE: ContextVar[Engine] = ContextVar("genai_agent_engine")
_GRAPH: list[Any] = []  # the compiled graph, made on first use


def _compiled() -> Any:
    if not _GRAPH:
        from langgraph.graph import END, START, StateGraph

        graph = StateGraph(RunState)
        graph.add_node("model", _model_node)
        graph.add_node("tools", _tools_node)
        graph.add_edge(START, "model")
        graph.add_conditional_edges("model", _after_model, {"tools": "tools", END: END})
        graph.add_conditional_edges("tools", _after_tools, {"model": "model", END: END})
        _GRAPH.append(graph.compile())
    return _GRAPH[0]


async def _model_node(state: RunState) -> dict[str, Any]:
    return await _ENGINE.get()._model(state)


async def _tools_node(state: RunState) -> dict[str, Any]:
    return await _ENGINE.get()._tools(state)


def _after_model(state: RunState) -> str:
    from langgraph.graph import END

    return END if state.get("status") or not state.get("pending") else "tools"


def _after_tools(state: RunState) -> str:
    from langgraph.graph import END

    return END if state.get("status") else "model"
