"""Hosted agents: a gateway target that answers a chat request by running an agent.

A deployment names it as a target's backend, with the agent's definition (the YAML shape
of :func:`agents.load_agent`) as its options::

    targets:
      - name: agent
        backend: agent
        options:
          agent:
            name: support
            model: chat                    # another deployment of the same project
            instructions: Answer from the tools' results.
            tools: [{mcp: {name: shop, url: "http://shop.internal/mcp"}}]
            budget: {max_steps: 8}

Any OpenAI client calls it like a model (``model="support-agent"``). The run is the
caller's: its model calls go back through this gateway with the caller's own key (in
process, through the gateway's ASGI app: quotas, DLP and the ledger apply to each), its
rows are the caller's project's, and ``x-genai-session`` threads a conversation (a request
that carries only the new messages goes on from the session's last run). A whole answer
carries ``agent_run`` (id, status, steps, tokens, cost) beside OpenAI's fields; a streamed
one sends the model's text as deltas and each tool call, tool result and handoff as a chunk
with an ``agent_event`` field, and ``agent_run`` on the last chunk.

A run that failed is a 502 naming why; one stopped by its budget is an answer whose
``agent_run.status`` says which limit. An agent's answer is never cached (its tools act),
its own ledger row counts no tokens (the model calls it made have theirs), and nesting is
bounded: an agent whose model is an agent deployment calling back again is refused past
:data:`MAX_DEPTH`.

Definitions come from project maintainers; the gateway's host is the operator's, so only
what cannot run code on the host is allowed unless the operator says otherwise:
``GENAI_AGENT_TOOL_MODULES`` lists the modules whose Python tools deployments may name
(none by default) and ``GENAI_AGENT_MCP_STDIO=1`` allows MCP servers run as commands.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from apps._prompts import CallerContext
from genai import Client
from genai.errors import BackendError, ValidationError
from genai.gateway import DeploymentSpec, GatewayRequest, TargetSpec
from genai.settings import Settings
from genai.store import Store

if TYPE_CHECKING:
    from agents import Agent, AgentEvent, RunInfo

__all__ = [
    "AGENT_BACKEND",
    "MAX_DEPTH",
    "AgentPolicy",
    "AgentTarget",
    "check_agent_targets",
    "deployed_agent",
]

AGENT_BACKEND = "agent"
MAX_DEPTH = 3  # an agent's model may be another agent, at most this deep
_DEPTH_HEADER = "x-genai-agent-depth"
_GATEWAY = "http://gateway.internal/v1"  # the in-process base URL (never resolved)
_NO_TOKENS = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


@dataclass(frozen=True)
class AgentPolicy:
    """What a hosted agent's definition may name (see the module's docstring)."""

    python_modules: Collection[str] = ()
    mcp_stdio: bool = False

    @classmethod
    def from_env(cls) -> AgentPolicy:
        modules = os.environ.get("GENAI_AGENT_TOOL_MODULES", "")
        stdio = os.environ.get("GENAI_AGENT_MCP_STDIO", "").lower() in ("1", "true", "yes")
        return cls(tuple(m.strip() for m in modules.split(",") if m.strip()), stdio)


def hosted_agent(target: TargetSpec, policy: AgentPolicy) -> Agent:
    """The agent a target's options define, or a ValidationError naming the field."""
    from agents import agent_from_dict

    options = dict(target.options)
    definition = options.pop("agent", None)
    if options:
        raise ValidationError(
            f"target {target.name!r} ({AGENT_BACKEND}): unknown options {sorted(options)}: "
            "give the agent's definition as options.agent",
            field="options",
        )
    if not isinstance(definition, dict):
        raise ValidationError(
            f"target {target.name!r} ({AGENT_BACKEND}): options.agent must be the agent's "
            "definition (name, model, instructions, tools, ...)",
            field="options.agent",
        )
    return agent_from_dict(
        definition, python_modules=policy.python_modules, mcp_stdio=policy.mcp_stdio
    )


def deployed_agent(
    client: Client, project: str, deployment: str, policy: AgentPolicy | None = None
) -> Agent:
    """The agent a deployment's newest revision hosts (its first agent target), under
    ``policy`` (default: the operator's of this process, ``GENAI_AGENT_TOOL_MODULES``...)."""
    from genai.gateway import parse_spec

    revision = client.registry.deployments.get(project, deployment)
    spec = parse_spec(revision.spec)
    for target in [*spec.targets, *spec.fallbacks]:
        if target.backend == AGENT_BACKEND:
            return hosted_agent(target, policy or AgentPolicy.from_env())
    raise ValidationError(
        f"deployment {deployment!r} hosts no agent (no target with backend: agent)",
        field="deployment",
    )


def check_agent_targets(spec: DeploymentSpec, deployment: str, policy: AgentPolicy) -> None:
    """Refuse a deployment whose agent targets are malformed or call the deployment itself
    (a loop of one), or that shadows to an agent (a mirrored request would run the agent's
    tools a second time): checked when the deployment is written."""
    if spec.shadow is not None and spec.shadow.target.backend == AGENT_BACKEND:
        raise ValidationError(
            f"deployment {deployment!r} shadows to an agent: a mirrored request would run "
            "its tools again; shadow to a model deployment instead",
            field="shadow",
        )
    for target in [*spec.targets, *spec.fallbacks]:
        if target.backend != AGENT_BACKEND:
            continue
        agent = hosted_agent(target, policy)
        for member in agent.team().values():
            if member.model.partition(":")[0] == deployment:
                raise ValidationError(
                    f"agent {member.name!r} of deployment {deployment!r} names the deployment "
                    "itself as its model: give it a model deployment",
                    field="options.agent.model",
                )


class AgentTarget:
    """The ``agent`` target stage (see the module's docstring). :meth:`bind` gives it the
    gateway's ASGI app, which its runs' model calls go through."""

    name = AGENT_BACKEND

    def __init__(
        self, settings: Settings, store: Store, *, policy: AgentPolicy | None = None
    ) -> None:
        self._settings = settings
        self._store = store
        self._policy = policy or AgentPolicy.from_env()
        self._app: Any = None

    def bind(self, app: Any) -> None:
        self._app = app

    @property
    def policy(self) -> AgentPolicy:
        return self._policy

    async def prepare(self, request: GatewayRequest, target: TargetSpec) -> None:
        request.notes.uncacheable = "an agent's answer (its tools act; each run is its own)"
        hosted_agent(target, self._policy)  # a bad definition refuses the request

    async def complete(self, request: GatewayRequest, target: TargetSpec) -> dict[str, Any]:
        run = _unless_failed(await self._run(request, target, None))
        return _completion(request, run)

    async def stream(
        self, request: GatewayRequest, target: TargetSpec
    ) -> AsyncIterator[dict[str, Any]]:
        events: asyncio.Queue[AgentEvent | None] = asyncio.Queue()
        task = asyncio.create_task(self._run(request, target, events.put))
        task.add_done_callback(lambda _: events.put_nowait(None))
        yield _chunk(request, {"role": "assistant", "content": ""})
        try:
            while (event := await events.get()) is not None:
                if event.kind == "text":
                    yield _chunk(request, {"content": event.content})
                else:
                    yield {**_chunk(request, {}), "agent_event": _event(event)}
            run = _unless_failed(await task)
        finally:
            if not task.done():
                task.cancel()
        if run.status != "completed":  # what stopped it, in words the caller sees
            yield _chunk(request, {"content": _answer_text(run)})
        yield {**_chunk(request, {}, finish="stop"), "agent_run": _run_summary(run)}
        yield {**_chunk(request, {}), "choices": [], "usage": dict(_NO_TOKENS)}

    async def _run(self, request: GatewayRequest, target: TargetSpec, listener: Any) -> RunInfo:
        import httpx

        from agents import AgentRunner

        if self._app is None:
            raise RuntimeError("the agent target was not bound to the gateway's app")
        depth = _depth(request)
        agent = hosted_agent(target, self._policy)
        messages = request.body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ValidationError("an agent needs messages", field="messages")
        client = Client(CallerContext(self._settings, self._store, request.principal))
        transport = httpx.ASGITransport(app=self._app)
        async with httpx.AsyncClient(transport=transport, timeout=None) as http:
            runner = AgentRunner(
                client,
                request.project,
                gateway=_GATEWAY,
                api_key=request.credential,
                http_client=http,
                max_retries=0,
            )
            session = request.session_id
            return await runner.arun(
                agent,
                messages,
                session=session,
                continue_session=session is not None and _only_new(messages),
                on_event=listener,
                headers={_DEPTH_HEADER: str(depth + 1)},
                hosted_by=request.deployment,
            )


def _unless_failed(run: RunInfo) -> RunInfo:
    """A run that failed (its model refused, a tool server died) is an error of this
    request (502); one that stopped at its budget or waits for approval is an answer."""
    if run.status == "failed":
        raise BackendError(
            f"agent run {run.run_id} failed: {run.detail}", backend=AGENT_BACKEND, status=502
        )
    return run


def _depth(request: GatewayRequest) -> int:
    raw = request.headers.get(_DEPTH_HEADER, "0")
    depth = int(raw) if raw.isdigit() else 0
    if depth >= MAX_DEPTH:
        raise ValidationError(
            f"agents call agents {depth} deep here, more than {MAX_DEPTH - 1}: a loop of "
            "agent deployments? give the agents model deployments",
            field="model",
        )
    return depth


def _only_new(messages: list[Any]) -> bool:
    """True when a request carries no earlier turn (no assistant or tool message): it goes
    on from its session's conversation."""
    return all(isinstance(m, dict) and m.get("role") in ("system", "user") for m in messages)


def _run_summary(run: RunInfo) -> dict[str, Any]:
    return {
        "id": run.run_id,
        "status": run.status,
        "detail": run.detail,
        "steps": run.steps,
        "tokens": run.tokens,
        "cost_usd": run.cost_usd,
    }


def _event(event: AgentEvent) -> dict[str, Any]:
    fields = {
        "type": event.kind,
        "agent": event.agent,
        "name": event.name,
        "call_id": event.call_id,
        "arguments": event.arguments,
        "content": event.content,
        "status": event.status,
    }
    return {k: v for k, v in fields.items() if v}


def _answer_text(run: RunInfo) -> str:
    if run.status == "completed":
        return run.output or ""
    if run.status == "awaiting_approval":
        return f"(waiting for approval: run {run.run_id})"
    return f"(the agent stopped: {run.status}: {run.detail})"


def _completion(request: GatewayRequest, run: RunInfo) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{request.request_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.body.get("model", request.deployment),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": _answer_text(run)},
                "finish_reason": "stop",
            }
        ],
        "usage": dict(_NO_TOKENS),  # the model calls it made are rows of their own
        "agent_run": _run_summary(run),
    }


def _chunk(
    request: GatewayRequest, delta: dict[str, Any], finish: str | None = None
) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{request.request_id}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": request.body.get("model", request.deployment),
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
