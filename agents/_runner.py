"""``AgentRunner``: runs agents of one project through the gateway, as the caller.

    with genai.connect(settings, user="alice") as client:
        runner = AgentRunner(client, "shop", gateway="http://127.0.0.1:4000/v1", api_key=key)
        run = runner.run(support, "Where is order 42?")
        run.status, run.output          # "completed", "It shipped on Monday."
        runner.steps(run.run_id)        # the trace: model calls and tool calls

Every model call goes through the gateway with ``api_key`` (a key of the project: quotas,
DLP and the usage ledger apply, and each call is a ledger row); the run, its checkpoints,
trace, tool outcomes and approvals are kept in the platform's store. Who may do what is
the project's roles': running an agent needs ``model:invoke`` (developer), reading runs
``registry:read`` (viewer), deciding an approval ``agent:approve`` (maintainer). Another
project's run is not found.

A run that paused for an approval, or whose process died, goes on with :meth:`resume`
(given the same agent: its Python tools cannot be stored).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import secrets
import ssl
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from agents._agent import Agent
from agents._checkpoint import StoreCheckpointer
from agents._engine import AgentEvent, Engine, RunState, trace_of
from agents._portal import Portal
from agents._records import ApprovalInfo, RunInfo, RunRecords, StepInfo
from genai.errors import GenAIError, NotFoundError, UsageError, ValidationError
from genai.tenancy import Action

if TYPE_CHECKING:
    from genai import Client
    from genai.dlp import Policy

__all__ = ["AgentRunner"]

Input = str | Sequence[Mapping[str, Any]]
Listener = Callable[[AgentEvent], Awaitable[None]]
Durability = Literal["sync", "async", "exit"]
#: Seconds a runner trusts an authorization and the project's DLP policy it read, as the
#: gateway trusts a verified key (GENAI_GATEWAY_CACHE_TTL_S, 10 s by default).
AUTH_TTL_S = 10.0


@dataclass(frozen=True)
class _Run:
    """One run as the runner drives it."""

    records: RunRecords
    run_id: str
    agent: Agent
    team: Mapping[str, Agent]
    session: str | None
    on_event: Listener | None
    headers: dict[str, str]


class AgentRunner:
    """Runs, resumes and inspects agent runs of ``project`` (see the module's docstring).

    ``gateway`` is the gateway's ``/v1`` URL; ``api_key`` a key of ``project``;
    ``clock`` the seconds the wall-time budget counts (injected in tests); ``http_client``
    an ``httpx.AsyncClient`` for the openai SDK (a test's transport, a proxy).
    ``durability`` is LangGraph's: ``sync`` (the default) writes each step's checkpoint
    before the next step starts, so a killed run resumes from its last step; ``async``
    writes it while the next step runs (a crash may redo the last model call); ``exit``
    only when the run stops or pauses. A side-effecting tool never runs twice in any mode:
    its call is claimed in the store before it runs.
    """

    def __init__(
        self,
        client: Client,
        project: str,
        *,
        gateway: str,
        api_key: str,
        clock: Callable[[], float] = time.monotonic,
        http_client: Any = None,
        max_retries: int = 2,
        durability: Durability = "sync",
    ) -> None:
        if durability not in ("sync", "async", "exit"):
            raise ValidationError(
                f"durability {durability!r}: use sync (a checkpoint written before each next "
                "step), async (written while the next step runs) or exit (at the end only)",
                field="durability",
            )
        self._durability = durability
        self._client = client
        self.project = project
        self._gateway = gateway.rstrip("/")
        self._api_key = api_key
        self._clock = clock
        self._http_client = http_client
        self._max_retries = max_retries
        self._checked_key = False
        self._portal = Portal(f"agent-runner:{project}")
        weakref.finalize(self, self._portal.close)  # a runner dropped without close()
        self._kept: Any = None  # the openai client of the portal's loop
        self._allowed: dict[Action, tuple[float, tuple[RunRecords, str]]] = {}
        self._dlp: tuple[float, Policy | None] | None = None

    # ---------------------------------------------------------------- running

    def run(self, agent: Agent, input: Input, *, session: str | None = None) -> RunInfo:
        """:meth:`arun` from sync code (a notebook's cell too), on the runner's own event
        loop in a thread, which keeps its connection to the gateway from run to run."""
        return self._portal.call(lambda: self.arun(agent, input, session=session))

    def resume(self, run_id: str, agent: Agent) -> RunInfo:
        """:meth:`aresume` from sync code (see :meth:`run`)."""
        return self._portal.call(lambda: self.aresume(run_id, agent))

    async def arun(
        self,
        agent: Agent,
        input: Input,
        *,
        session: str | None = None,
        continue_session: bool = False,
        on_event: Listener | None = None,
        headers: Mapping[str, str] | None = None,
        hosted_by: str | None = None,
    ) -> RunInfo:
        """Run ``agent`` on ``input`` (a question, or OpenAI chat messages) until it answers,
        reaches its budget, fails, or waits for an approval; returns the run as stored.
        ``hosted_by`` names the deployment that hosts the agent (kept with the run: a
        paused hosted run is resumed from that deployment's definition).

        ``session`` names the conversation (sent to the gateway as ``x-genai-session``:
        DLP keeps its pseudonyms per session); with ``continue_session`` the run goes on
        from the conversation of the session's last run. ``on_event`` hears the run's
        events as they happen; ``headers`` go with every model call."""
        team = agent.team()
        messages = _messages(input)
        records, me = await asyncio.to_thread(self._records, Action.MODEL_INVOKE)
        await asyncio.to_thread(self._check_key)
        if session is not None and continue_session:
            messages = await asyncio.to_thread(self._earlier, records, session) + messages
        run_id = "run_" + secrets.token_hex(12)
        await asyncio.to_thread(
            records.create,
            run_id=run_id,
            agent=agent.name,
            definition={**agent.describe(), "deployment": hosted_by},
            input=messages,
            session=session,
            created_by=me,
        )
        run = _Run(records, run_id, agent, team, session, on_event, dict(headers or {}))
        return await self._drive(run, {"messages": messages, "agent": agent.name})

    async def aresume(
        self, run_id: str, agent: Agent, *, on_event: Listener | None = None
    ) -> RunInfo:
        """Go on with a run that waits for approvals (all decided) or whose process died;
        a finished run is returned as it is."""
        records, _ = await asyncio.to_thread(self._records, Action.MODEL_INVOKE)
        info = await asyncio.to_thread(records.get, run_id)
        if info.finished:
            return info
        if info.agent != agent.name:
            raise ValidationError(
                f"agent run {run_id!r} was started by agent {info.agent!r}, not {agent.name!r}: "
                "resume it with the same agent",
                field="agent",
            )
        pending = await asyncio.to_thread(records.approvals, run_id=run_id, status="pending")
        if pending:
            return await asyncio.to_thread(records.update, run_id, status="awaiting_approval")
        await asyncio.to_thread(self._check_key)
        run = _Run(records, run_id, agent, agent.team(), info.session, on_event, {})
        return await self._drive(run, None)

    async def _drive(self, run: _Run, state: RunState | None) -> RunInfo:
        """The run's MCP servers connected for it, its graph run from ``state`` (None: from
        its last checkpoint), its row updated with how it ended."""
        async with contextlib.AsyncExitStack() as servers:
            try:
                team = await _connect_mcp(self._with_platform(run.team), servers)
                return await self._graph_run(dataclasses.replace(run, team=team), state)
            except GenAIError as error:
                detail = f"{type(error).__name__}: {error}"
            except Exception as error:  # the run's own bug or LangGraph's: never "running"
                await asyncio.to_thread(
                    run.records.update, run.run_id, status="failed", detail=repr(error)[:2000]
                )
                raise
        return await asyncio.to_thread(
            run.records.update, run.run_id, status="failed", detail=detail
        )

    @contextlib.asynccontextmanager
    async def _openai(self) -> AsyncIterator[Any]:
        """The openai SDK's client for a run: on the runner's own loop one client kept for
        all runs (its connections to the gateway reused), elsewhere one per run (a client
        belongs to the loop it was made on)."""
        import openai

        def make() -> Any:
            http = self._http_client or openai.DefaultAsyncHttpxClient(verify=_ssl_context())
            return openai.AsyncOpenAI(
                base_url=self._gateway,
                api_key=self._api_key,
                max_retries=self._max_retries,
                http_client=http,
            )

        if asyncio.get_running_loop() is self._portal.loop:
            if self._kept is None:
                self._kept = make()
            yield self._kept
            return
        async with make() as client:
            yield client

    def close(self) -> None:
        """Stop the runner's own loop and close its connections (the sync API starts them
        again if called after)."""
        self._portal.close(self._close_kept)

    async def _close_kept(self) -> None:
        kept, self._kept = self._kept, None
        if kept is not None:
            await kept.close()

    def __enter__(self) -> AgentRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def _graph_run(self, run: _Run, state: RunState | None) -> RunInfo:
        from langgraph.types import Command

        checkpointer = StoreCheckpointer(self._client.store, project_id=run.records.project_id)
        config: dict[str, Any] = {"configurable": {"thread_id": run.run_id}}
        async with self._openai() as client:
            engine = Engine(
                run_id=run.run_id,
                team=run.team,
                budget=run.agent.budget,
                client=client,
                records=run.records,
                clock=self._clock,
                session=run.session,
                headers=run.headers,
                on_event=run.on_event,
                durability=self._durability,
            )
            graph = engine.graph(checkpointer)
            config["recursion_limit"] = engine.recursion_limit()
            start: Any = state
            values: RunState | None = None
            if state is None:
                snapshot = await graph.aget_state(config)
                engine.base_elapsed = float(snapshot.values.get("elapsed_s", 0.0))
                interrupted = any(task.interrupts for task in snapshot.tasks)
                start = Command(resume=True) if interrupted else None
                if not snapshot.next and snapshot.values.get("status"):
                    values = snapshot.values  # it ended before its row said so: nothing to run
                elif not snapshot.next:  # killed before its input was durable: start over
                    info = await asyncio.to_thread(run.records.get, run.run_id)
                    start = {"messages": list(info.input), "agent": run.agent.name}
                if values is None:
                    await asyncio.to_thread(run.records.update, run.run_id, status="running")
            engine.started = self._clock()
            if values is None:
                values = await graph.ainvoke(start, config, durability=self._durability)
        waiting = "__interrupt__" in values  # LangGraph's word for a run that paused
        status = "awaiting_approval" if waiting else values.get("status") or "failed"
        detail = values.get("detail", "") if not waiting else "a tool call waits for approval"
        trace = await asyncio.to_thread(self._scrubbed, trace_of(values))
        info = await asyncio.to_thread(
            run.records.finish,
            run.run_id,
            trace,
            status=status,
            detail=detail,
            output=values.get("output"),
            steps=values.get("steps", 0),
            tokens=values.get("tokens", 0),
            cost_usd=values.get("cost_usd", 0.0),
        )
        if not waiting:  # ended: its step-by-step checkpoints are needed no more
            threads = await asyncio.to_thread(checkpointer.run_threads, run.run_id)
            await checkpointer.aprune(threads)
        return info

    def _with_platform(self, team: Mapping[str, Agent]) -> dict[str, Agent]:
        """The team with each agent's platform tools and registered MCP servers bound to
        this runner's caller and project."""
        from agents._mcp_registry import MCPServers
        from agents._platform import platform_tools

        bound = dict(team)
        for name, member in team.items():
            if member.platform_tools or member.registered_mcp:
                registry = MCPServers(self._client)
                tools = platform_tools(self._client, self.project, list(member.platform_tools))
                servers = [registry.server(self.project, n) for n in member.registered_mcp]
                bound[name] = dataclasses.replace(
                    member,
                    tools=[*member.tools, *tools],
                    mcp_servers=[*member.mcp_servers, *servers],
                    platform_tools=(),
                    registered_mcp=(),
                )
        return bound

    def _scrubbed(self, trace: list[StepInfo]) -> list[StepInfo]:
        """The trace as people may read it: under the project's DLP policy (its own, or
        the platform's default) every personal datum in a text, an argument list or a
        result is redacted (``<EMAIL_ADDRESS>``); without a policy it is kept as it is.
        The run's checkpoints keep the conversation itself: a resumed run needs it."""
        if not trace:
            return trace
        policy = self._policy()
        if policy is None:
            return trace
        dlp = _scrubber()
        scrubbed = []
        for step in trace:
            detail = dict(step.detail)
            for name in ("text", "arguments", "result", "error"):
                if isinstance(detail.get(name), str):
                    detail[name] = dlp.scrub_for_log(detail[name], policy)
            if detail.get("tool_calls"):
                detail["tool_calls"] = [
                    {**c, "arguments": dlp.scrub_for_log(str(c.get("arguments", "")), policy)}
                    for c in detail["tool_calls"]
                ]
            scrubbed.append(dataclasses.replace(step, detail=detail))
        return scrubbed

    def _policy(self) -> Policy | None:
        """The project's DLP policy, read again after :data:`AUTH_TTL_S` seconds (as the
        gateway's stages do: a changed policy applies within that time)."""
        from genai.dlp import effective_policy

        now = self._clock()
        if self._dlp is None or now - self._dlp[0] >= AUTH_TTL_S:
            self._dlp = (now, effective_policy(self._client, self.project))
        return self._dlp[1]

    def _earlier(self, records: RunRecords, session: str) -> list[dict[str, Any]]:
        """The conversation of the session's last run (none when it has no run yet)."""
        last = records.last_of_session(session)
        if last is None:
            return []
        checkpointer = StoreCheckpointer(self._client.store, project_id=records.project_id)
        found = checkpointer.get_tuple({"configurable": {"thread_id": last.run_id}})
        if found is None:
            return list(last.input)
        values = found.checkpoint.get("channel_values", {})
        return [m for m in values.get("messages", []) if m.get("role") != "system"]

    # ---------------------------------------------------------------- reading

    def get(self, run_id: str) -> RunInfo:
        return self._records(Action.REGISTRY_READ)[0].get(run_id)

    def runs(self, *, limit: int = 50, status: str | None = None) -> list[RunInfo]:
        return self._records(Action.REGISTRY_READ)[0].runs(limit=limit, status=status)

    def steps(self, run_id: str) -> list[StepInfo]:
        return self._records(Action.REGISTRY_READ)[0].steps(run_id)

    # ---------------------------------------------------------------- approvals

    def approvals(
        self, *, status: str | None = "pending", run_id: str | None = None
    ) -> list[ApprovalInfo]:
        return self._records(Action.REGISTRY_READ)[0].approvals(status=status, run_id=run_id)

    def approve(
        self,
        run_id: str,
        call_id: str,
        *,
        arguments: Mapping[str, Any] | None = None,
        reason: str = "",
    ) -> ApprovalInfo:
        """Approve a pending call (with other ``arguments``: an edit); then :meth:`resume`."""
        records, me = self._records(Action.AGENT_APPROVE)
        status = "approved" if arguments is None else "edited"
        if arguments is not None and not isinstance(arguments, Mapping):
            raise ValidationError("edited arguments must be a JSON object", field="arguments")
        return records.decide(
            run_id, call_id, status=status, by=me, reason=reason, arguments=arguments
        )

    def reject(self, run_id: str, call_id: str, *, reason: str = "") -> ApprovalInfo:
        """Reject a pending call: the model is told, and the run goes on when resumed."""
        records, me = self._records(Action.AGENT_APPROVE)
        return records.decide(run_id, call_id, status="rejected", by=me, reason=reason)

    # ---------------------------------------------------------------- helpers

    def _records(self, action: Action) -> tuple[RunRecords, str]:
        """The run records of the project, once the caller may do ``action`` in it. An
        allowed action is trusted for :data:`AUTH_TTL_S` seconds, as the gateway trusts a
        verified key (a revoked key or a removed member is refused after that at most):
        each run would otherwise verify the key again."""
        now = self._clock()
        cached = self._allowed.get(action)
        if cached is not None and now - cached[0] < AUTH_TTL_S:
            return cached[1]
        ctx = self._client.context
        with ctx.store.session() as s:
            me = ctx.me(s)
            project = ctx.project(s, me, self.project, action)
            records = RunRecords(ctx.store, project_id=project.id, project=project.name)
        self._allowed[action] = (now, (records, me.label))
        return records, me.label

    def _check_key(self) -> None:
        """The key must be one of the project: the run's rows and its model calls must
        belong to the same project."""
        if self._checked_key:
            return
        import genai

        keyed = genai.connect(
            self._client.settings, api_key=self._api_key, store=self._client.store
        )
        try:
            keyed.projects.get(self.project)
        except NotFoundError:
            raise UsageError(
                f"the API key is not a key of project {self.project!r}: use a key of the "
                "project the agent runs in (`genai key create --project ...`)"
            ) from None
        self._checked_key = True


@functools.cache
def _scrubber() -> Any:
    """The DLP service that scrubs traces, one per process so its detectors (Presidio, the
    bundled NER) load once. Scrubbing reads no vault and no key: it holds no store (a
    store kept here would keep its connections open for good)."""
    import os

    from genai.dlp import Dlp, DlpKeys

    return Dlp(keys=DlpKeys(os.urandom(32)))  # the keys seal vault entries; none are made


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """One TLS context for every run's client: building one loads the CA bundle (~30 ms),
    which a client made per run would otherwise pay each time."""
    import httpx

    return httpx.create_ssl_context()


async def _connect_mcp(
    team: Mapping[str, Agent], stack: contextlib.AsyncExitStack
) -> dict[str, Agent]:
    """The team with each agent's MCP tools added: a connection of each server for this
    run (closed when the run stops), so runs never share one."""
    from agents._mcp import MCPServer

    connected: dict[str, Agent] = {}
    for name, member in team.items():
        if not member.mcp_servers:
            connected[name] = member
            continue
        tools = list(member.tools)
        for server in member.mcp_servers:
            own = MCPServer(
                server.name,
                server.transport,
                timeout_s=server.timeout_s,
                connect_timeout_s=server.connect_timeout_s,
                close_timeout_s=server.close_timeout_s,
            )
            await stack.enter_async_context(own)
            tools.extend(await own.tools())
        connected[name] = dataclasses.replace(member, tools=tools, mcp_servers=())
    return connected


def _messages(input: Input) -> list[dict[str, Any]]:
    if isinstance(input, str):
        if not input.strip():
            raise ValidationError("the agent's input is empty: ask it something", field="input")
        return [{"role": "user", "content": input}]
    messages = [dict(m) for m in input]
    if not messages:
        raise ValidationError("the agent's input has no messages", field="input")
    for number, message in enumerate(messages):
        if message.get("role") not in ("system", "user", "assistant", "tool"):
            raise ValidationError(
                f"message {number} has role {message.get('role')!r}: use system, user, "
                "assistant or tool",
                field="input",
            )
    return messages
