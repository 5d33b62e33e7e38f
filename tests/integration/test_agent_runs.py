"""Agent runs through the real gateway: a scripted model (the ``fake`` backend) behind it,
tools, budgets that hold, approvals across a restart, project isolation, a ledger row per
model call."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from _clocks import wait_until

import agents
import genai
from genai.errors import Forbidden, NotFoundError, ValidationError
from genai.testing import ManualClock


def _call(name: str, arguments: dict[str, Any] | str, call_id: str) -> dict[str, Any]:
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"tool_calls": [{"id": call_id, "function": {"name": name, "arguments": text}}]}


@agents.tool
def weather(city: str) -> str:
    """The weather in a city.

    Args:
        city: The city's name.
    """
    return f"sunny in {city}"


class World:
    """A gateway, project ``gateway`` with a developer key, and a runner acting as it."""

    def __init__(self, project: Any, gateway: Any, settings: Any) -> None:
        self.project, self.gateway, self.settings = project, gateway, settings
        self.client = genai.connect(settings, api_key=project.key)

    def deploy(self, replies: list[Any], *, name: str = "bot", **target: Any) -> None:
        spec = {"name": "model", "backend": "fake", "options": {"replies": replies}, **target}
        self.project.deploy({"targets": [spec]}, name=name)

    def runner(self, client: Any = None, **kwargs: Any) -> agents.AgentRunner:
        return agents.AgentRunner(
            client or self.client,
            "gateway",
            gateway=self.gateway.v1,
            api_key=self.project.key,
            **kwargs,
        )


@pytest.fixture
def world(project: Any, gateway_server: Any, settings: Any) -> Any:
    gw = gateway_server(settings)
    w = World(project, gw, settings)
    yield w
    w.client.close()


def _checkpoints(world: World) -> dict[str, int]:
    """Checkpoints kept per thread."""
    from sqlalchemy import func, select

    from genai.store import schema as t

    cp = t.AgentCheckpoint
    with world.client.store.session() as s:
        rows = s.execute(select(cp.thread_id, func.count()).group_by(cp.thread_id)).all()
    return {thread: count for thread, count in rows}


def test_a_tool_call_and_an_answer_each_a_ledger_row(world: World) -> None:
    world.deploy([_call("weather", {"city": "Paris"}, "c1"), "It is sunny in Paris."])
    agent = agents.Agent(name="helper", model="bot", instructions="Use the tools.", tools=[weather])
    run = world.runner().run(agent, "Weather in Paris?")
    assert (run.status, run.output, run.steps) == ("completed", "It is sunny in Paris.", 2)
    steps = world.runner().steps(run.run_id)
    assert [(s.kind, s.name, s.status) for s in steps] == [
        ("model", "bot", "ok"),
        ("tool", "weather", "ok"),
        ("model", "bot", "ok"),
    ]
    assert steps[1].detail["result"] == "sunny in Paris"
    assert steps[0].detail["request_id"]
    assert wait_until(lambda: world.project.count() == 2, 10)  # a ledger row per model call
    assert run.tokens > 0


def test_bad_arguments_and_unknown_tools_go_back_to_the_model(world: World) -> None:
    world.deploy(
        [
            _call("weather", {"town": "Paris"}, "c1"),
            _call("weather", "{not json", "c2"),
            _call("teleport", {}, "c3"),
            "Sorry.",
        ]
    )
    agent = agents.Agent(name="helper", model="bot", tools=[weather])
    run = world.runner().run(agent, "Weather?")
    assert run.status == "completed"
    statuses = [(s.name, s.status) for s in world.runner().steps(run.run_id) if s.kind == "tool"]
    assert statuses == [
        ("weather", "invalid_arguments"),
        ("weather", "invalid_arguments"),
        ("teleport", "invalid_arguments"),
    ]
    result = world.runner().steps(run.run_id)[5].detail["result"]
    assert "unknown tool 'teleport'" in result and "weather" in result


@pytest.mark.slow
def test_a_looping_model_stops_at_exactly_max_steps_every_time(world: World) -> None:
    runs, steps = 50, 3
    world.deploy([_call("weather", {"city": f"c{i}"}, f"c{i}") for i in range(runs * steps)])
    agent = agents.Agent(
        name="looper", model="bot", tools=[weather], budget=agents.Budget(max_steps=steps)
    )
    runner = world.runner()
    outcomes = [runner.run(agent, "go") for _ in range(runs)]
    assert {(r.status, r.steps) for r in outcomes} == {("max_steps", steps)}
    assert "3 model calls" in outcomes[0].detail


def test_the_same_call_again_and_again_is_a_loop(world: World) -> None:
    world.deploy([_call("weather", {"city": "Oslo"}, f"c{i}") for i in range(10)])
    agent = agents.Agent(
        name="looper", model="bot", tools=[weather], budget=agents.Budget(loop_limit=3)
    )
    run = world.runner().run(agent, "go")
    assert (run.status, run.steps) == ("loop_detected", 3)
    tools = [s for s in world.runner().steps(run.run_id) if s.kind == "tool"]
    assert len(tools) == 2  # the third identical call never ran


def test_token_cost_and_tool_call_budgets(world: World) -> None:
    replies = [_call("weather", {"city": f"c{i}"}, f"c{i}") for i in range(40)]
    price = {"input_per_1m": 1_000_000.0, "output_per_1m": 0.0}  # $1 per prompt token
    world.deploy(replies, price=price)
    runner = world.runner()
    by_tokens = runner.run(
        agents.Agent(name="a", model="bot", tools=[weather], budget=agents.Budget(max_tokens=1)),
        "go",
    )
    assert (by_tokens.status, by_tokens.steps) == ("max_tokens", 1)
    by_cost = runner.run(
        agents.Agent(
            name="a", model="bot", tools=[weather], budget=agents.Budget(max_cost_usd=1.0)
        ),
        "go",
    )
    assert (by_cost.status, by_cost.steps) == ("max_cost", 1) and by_cost.cost_usd >= 1.0
    by_calls = runner.run(
        agents.Agent(
            name="a",
            model="bot",
            tools=[weather],
            budget=agents.Budget(max_calls_per_tool={"weather": 2}),
        ),
        "go",
    )
    assert (by_calls.status, by_calls.steps) == ("max_tool_calls", 3)
    assert "'weather'" in by_calls.detail
    zero = runner.run(agents.Agent(name="a", model="bot", budget=agents.Budget(max_steps=0)), "go")
    assert (zero.status, zero.steps) == ("max_steps", 0)


def test_the_wall_time_budget_counts_the_runs_own_clock(world: World) -> None:
    clock = ManualClock()

    @agents.tool
    def slow(n: int) -> str:
        """Takes ten seconds of the run's clock."""
        clock.advance(10)
        return "done"

    world.deploy([_call("slow", {"n": i}, f"c{i}") for i in range(10)])
    agent = agents.Agent(name="a", model="bot", tools=[slow], budget=agents.Budget(max_wall_s=25))
    run = world.runner(clock=clock).run(agent, "go")
    assert (run.status, run.steps) == ("max_wall_time", 3)


def test_approve_reject_and_edit_also_after_a_restart(world: World, settings: Any) -> None:
    sent: list[dict[str, Any]] = []

    @agents.tool(requires_approval=True, side_effects=True)
    def refund(order: str, amount: float) -> str:
        """Refund an order."""
        sent.append({"order": order, "amount": amount})
        return f"refunded {amount} on {order}"

    world.deploy(
        [
            _call("refund", {"order": "A1", "amount": 500}, "r1"),
            _call("refund", {"order": "A2", "amount": 5}, "r2"),
            "Done.",
        ]
    )
    agent = agents.Agent(name="support", model="bot", tools=[refund])
    run = world.runner().run(agent, "refund both")
    assert run.status == "awaiting_approval" and sent == []
    assert _checkpoints(world)[run.run_id] > 1  # a paused run keeps its steps' checkpoints
    pending = world.runner().approvals()
    assert [(a.run_id, a.call_id, a.arguments) for a in pending] == [
        (run.run_id, "r1", {"order": "A1", "amount": 500})
    ]
    with pytest.raises(Forbidden, match="maintainer"):  # a developer may not approve
        world.runner().approve(run.run_id, "r1")
    with genai.connect(settings, user="admin") as admin:
        world.runner(admin).approve(run.run_id, "r1", arguments={"order": "A1", "amount": 50})
    run = world.runner().resume(run.run_id, agent)  # a new runner: as after a restart
    assert run.status == "awaiting_approval" and sent == [{"order": "A1", "amount": 50}]
    with genai.connect(settings, user="admin") as admin:
        world.runner(admin).reject(run.run_id, "r2", reason="too small to bother")
        with pytest.raises(Exception, match="already rejected"):
            world.runner(admin).approve(run.run_id, "r2")
    run = world.runner().resume(run.run_id, agent)
    assert (run.status, run.output) == ("completed", "Done.")
    assert sent == [{"order": "A1", "amount": 50}]
    assert _checkpoints(world) == {run.run_id: 1}  # an ended run keeps its newest only
    assert world.runner().resume(run.run_id, agent).output == "Done."  # still answers
    results = [s.detail["result"] for s in world.runner().steps(run.run_id) if s.kind == "tool"]
    assert results[0] == "refunded 50.0 on A1" and "too small to bother" in results[1]


def test_another_project_sees_no_run_and_decides_nothing(world: World, settings: Any) -> None:
    from _gateway_harness import new_project

    world.deploy([_call("weather", {"city": "Oslo"}, "c1"), "ok"])
    run = world.runner().run(agents.Agent(name="a", model="bot", tools=[weather]), "go")
    with genai.connect(settings, user="admin") as admin:
        other = new_project(admin, "other")
    with genai.connect(settings, api_key=other.key) as client:
        runner = agents.AgentRunner(client, "other", gateway=world.gateway.v1, api_key=other.key)
        with pytest.raises(NotFoundError, match="not found"):
            runner.get(run.run_id)
        assert runner.runs() == [] and runner.approvals(status=None) == []
        with pytest.raises(NotFoundError):
            runner.resume(run.run_id, agents.Agent(name="a", model="bot"))
        spoofed = agents.AgentRunner(client, "gateway", gateway=world.gateway.v1, api_key=other.key)
        with pytest.raises(NotFoundError, match="project 'gateway' not found"):
            spoofed.runs()


def test_a_key_of_another_project_is_refused(world: World, settings: Any) -> None:
    from _gateway_harness import new_project

    with genai.connect(settings, user="admin") as admin:
        other = new_project(admin, "other")
        runner = agents.AgentRunner(admin, "gateway", gateway=world.gateway.v1, api_key=other.key)
        with pytest.raises(Exception, match="not a key of project 'gateway'"):
            runner.run(agents.Agent(name="a", model="bot"), "hi")


def test_a_model_without_tool_support_ends_the_run_with_a_clear_status(world: World) -> None:
    no_tools = {"name": "model", "backend": "fake", "options": {"supports": [], "default": "hi"}}
    world.project.deploy({"targets": [no_tools]}, name="quotes")
    run = world.runner().run(agents.Agent(name="a", model="quotes", tools=[weather]), "hi")
    assert run.status == "failed"
    assert "tools" in run.detail and "quotes" in run.detail


def test_handoffs_pass_the_conversation_and_share_one_budget(world: World) -> None:
    world.deploy(
        [
            _call("transfer_to_billing", {}, "h1"),
            _call("transfer_to_triage", {}, "h2"),
            _call("transfer_to_billing", {}, "h3"),
            "never",
        ]
    )
    billing = agents.Agent(name="billing", model="bot", handoffs=["triage"])
    triage = agents.Agent(
        name="triage", model="bot", handoffs=[billing], budget=agents.Budget(max_steps=3)
    )
    run = world.runner().run(triage, "I was charged twice")
    assert (run.status, run.steps) == ("max_steps", 3)
    steps = world.runner().steps(run.run_id)
    assert [s.agent for s in steps if s.kind == "model"] == ["triage", "billing", "triage"]


def test_bad_agents_are_refused_before_any_call() -> None:
    with pytest.raises(ValidationError, match="invalid agent name"):
        agents.Agent(name="a b", model="bot")
    with pytest.raises(ValidationError, match="names no model"):
        agents.Agent(name="a", model=" ")
    with pytest.raises(ValidationError, match="two tools named 'weather'"):
        agents.Agent(name="a", model="bot", tools=[weather, weather])
    with pytest.raises(ValidationError, match="not an agent of"):
        agents.Agent(name="a", model="bot", handoffs=["ghost"]).team()
    with pytest.raises(ValidationError, match="0 or more"):
        agents.Budget(max_steps=-1)


def test_a_supervisor_asks_sub_agents_as_tools_on_one_budget(world: World) -> None:
    world.deploy(
        [
            _call("ask_researcher", {"request": "weather in Oslo?"}, "s1"),
            _call("weather", {"city": "Oslo"}, "r1"),  # the researcher's own turn
            "Oslo: sunny.",  # the researcher's answer
            "The researcher says Oslo is sunny.",  # the supervisor's
        ]
    )
    researcher = agents.Agent(name="researcher", model="bot", tools=[weather])
    boss = agents.Agent(name="boss", model="bot", agents=[researcher])
    run = world.runner().run(boss, "How is Oslo?")
    assert (run.status, run.output, run.steps) == (
        "completed",
        "The researcher says Oslo is sunny.",
        4,  # the supervisor's two model calls and the researcher's two
    )
    steps = world.runner().steps(run.run_id)
    assert [(s.kind, s.agent, s.name) for s in steps] == [
        ("model", "boss", "bot"),
        ("agent", "boss", "ask_researcher"),
        ("model", "researcher", "bot"),
        ("tool", "researcher", "weather"),
        ("model", "researcher", "bot"),
        ("model", "boss", "bot"),
    ]
    assert steps[1].detail["result"] == "Oslo: sunny."
    assert wait_until(lambda: world.project.count() == 4, 10), world.project.count()
    (sub,) = [thread for thread in _checkpoints(world) if thread != run.run_id]
    assert sub.startswith(run.run_id + ":")  # the researcher's thread, pruned as well
    assert _checkpoints(world) == {run.run_id: 1, sub: 1}


def test_a_sub_agent_spends_the_supervisors_budget(world: World) -> None:
    world.deploy(
        [_call("ask_looper", {"request": "go"}, "s1")]
        + [_call("weather", {"city": f"c{i}"}, f"r{i}") for i in range(10)]
    )
    looper = agents.Agent(name="looper", model="bot", tools=[weather])
    boss = agents.Agent(
        name="boss", model="bot", agents=[looper], budget=agents.Budget(max_steps=4)
    )
    run = world.runner().run(boss, "go")
    assert (run.status, run.steps) == ("max_steps", 4)  # 1 of the boss, 3 of the looper
    assert "sub-agent looper" in run.detail


def test_a_sub_agents_approval_pauses_the_whole_run(world: World, settings: Any) -> None:
    sent: list[str] = []

    @agents.tool(requires_approval=True, side_effects=True)
    def send(text: str) -> str:
        """Send a message."""
        sent.append(text)
        return "sent"

    world.deploy(
        [
            _call("ask_mailer", {"request": "send hi"}, "s1"),
            _call("send", {"text": "hi"}, "m1"),
            "Sent it.",
            "Done: the mailer sent it.",
        ]
    )
    mailer = agents.Agent(name="mailer", model="bot", tools=[send])
    boss = agents.Agent(name="boss", model="bot", agents=[mailer])
    run = world.runner().run(boss, "send hi")
    assert run.status == "awaiting_approval" and sent == []
    assert [a.call_id for a in world.runner().approvals()] == ["m1"]
    with genai.connect(settings, user="admin") as admin:
        world.runner(admin).approve(run.run_id, "m1")
    run = world.runner().resume(run.run_id, boss)
    assert (run.status, run.output, sent) == ("completed", "Done: the mailer sent it.", ["hi"])


def test_platform_tools_read_the_callers_project_only(world: World, settings: Any) -> None:
    import asyncio

    from _gateway_harness import new_project

    from agents import PlatformTool
    from agents._platform import platform_tools

    world.deploy(["hi"])
    with genai.connect(settings, user="admin") as admin:
        other = new_project(admin, "other")
        other.deploy({"targets": [{"name": "m", "backend": "fake"}]}, name="secret-bot")
    specs = [PlatformTool(kind) for kind in ("deployments", "adapters", "eval_runs", "usage")]
    tools = {t.name: t for t in platform_tools(world.client, "gateway", specs)}
    deployments = asyncio.run(tools["deployments"].invoke({}))
    assert deployments.status == "ok"
    assert '"bot"' in deployments.content and "secret-bot" not in deployments.content
    for name in ("adapters", "eval_runs", "usage"):
        assert asyncio.run(tools[name].invoke({})).status == "ok", name
    lineage = platform_tools(world.client, "gateway", [PlatformTool("lineage")])[0]
    missing = asyncio.run(lineage.invoke({"ref": "deployment:secret-bot@1"}))
    assert missing.status == "error" and "not found" in missing.content
    # another project's tools: a key of `gateway` reads nothing of `other`
    foreign = platform_tools(world.client, "other", [PlatformTool("deployments")])[0]
    refused = asyncio.run(foreign.invoke({}))
    assert refused.status == "error" and "not found" in refused.content
    with pytest.raises(ValidationError, match="unknown platform tool"):
        PlatformTool("shell")


def test_spans_only_when_tracing_is_configured(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
    from opentelemetry import trace
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider = trace.get_tracer_provider()
    if not isinstance(provider, sdk_trace.TracerProvider):
        provider = sdk_trace.TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        world.deploy(
            [_call("weather", {"city": "Oslo"}, f"c{i}") if i % 2 == 0 else "ok" for i in range(4)]
        )
        agent = agents.Agent(name="a", model="bot", tools=[weather])
        monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
        monkeypatch.delenv("GENAI_OTEL", raising=False)
        quiet = world.runner().run(agent, "go")
        monkeypatch.setenv("GENAI_OTEL", "1")
        traced = world.runner().run(agent, "go")

        def of(run_id: str) -> list[str]:
            return [
                s.name
                for s in exporter.get_finished_spans()
                if (s.attributes or {}).get("genai.agent_run") == run_id
            ]

        assert of(quiet.run_id) == []  # nothing unless GENAI_OTEL or an OTLP endpoint is set
        assert of(traced.run_id) == ["agent.model", "agent.tool", "agent.model"]
    finally:
        exporter.shutdown()
        exporter.clear()


@pytest.mark.slow
def test_the_trace_is_scrubbed_under_the_projects_dlp_policy(world: World, settings: Any) -> None:
    from genai.dlp import Policy, ProjectPolicies

    @agents.tool
    def customer(order: str) -> str:
        """The customer of an order."""
        return "Jane Roe, jane.roe@example.com"

    script = [_call("customer", {"order": "A1"}, "c1"), "Write to jane.roe@example.com."]
    world.deploy(script)
    world.deploy([*script, "a second script"], name="bot2")  # its own scripted backend
    agent = agents.Agent(name="a", model="bot", tools=[customer])
    plain = world.runner().run(agent, "who?")
    assert "jane.roe@example.com" in world.runner().steps(plain.run_id)[1].detail["result"]
    with genai.connect(settings, user="admin") as admin:
        ProjectPolicies(admin).set("gateway", Policy())
    scrubbed = world.runner().run(dataclasses.replace(agent, model="bot2"), "who?")
    steps = world.runner().steps(scrubbed.run_id)
    assert "jane.roe@example.com" not in steps[1].detail["result"]
    assert "<EMAIL_ADDRESS>" in steps[1].detail["result"]
    assert scrubbed.status == "completed" and "jane.roe" not in steps[2].detail["text"]


@pytest.mark.slow
def test_a_registered_mcp_server_serves_its_projects_agents_only(
    world: World, settings: Any
) -> None:
    from _gateway_harness import new_project
    from _mcp_servers import start_http_server

    from agents._mcp_registry import MCPServers
    from genai.errors import Forbidden

    process, url = start_http_server(timeout=60)
    try:
        with genai.connect(settings, user="admin") as admin:
            other = new_project(admin, "other")
            MCPServers(admin).add("gateway", "calc", url=url)
        with pytest.raises(Forbidden):  # registering is the owners'
            MCPServers(world.client).add("gateway", "calc2", url=url)
        assert [s.name for s in MCPServers(world.client).list("gateway")] == ["calc"]
        world.deploy([_call("calc__add", {"a": 2, "b": 3}, "c1"), "5."])
        agent = agents.agent_from_dict(
            {"name": "a", "model": "bot", "tools": [{"mcp": {"server": "calc"}}]}
        )
        run = world.runner().run(agent, "2 + 3?")
        assert (run.status, run.output) == ("completed", "5.")
        assert world.runner().steps(run.run_id)[1].detail["result"] == '{"result": 5}'
        # project `other` has no server named calc: its run fails, naming the fix
        with genai.connect(settings, api_key=other.key) as client:
            runner = agents.AgentRunner(
                client, "other", gateway=world.gateway.v1, api_key=other.key
            )
            failed = runner.run(agent, "2 + 3?")
        assert failed.status == "failed" and "not registered in project 'other'" in failed.detail
    finally:
        process.kill()
        process.wait(30)


def test_a_registered_mcp_server_gets_its_token_from_a_project_secret(
    world: World, settings: Any
) -> None:
    from _mcp_servers import start_http_server

    from agents._mcp_registry import MCPServers

    process, url = start_http_server(timeout=60, token="s3cret-token")
    try:
        with genai.connect(settings, user="admin") as admin:
            servers = MCPServers(admin)
            with pytest.raises(ValidationError, match="genai secret set crm-token"):
                servers.add("gateway", "calc", url=url, token_secret="crm-token")
            servers.add("gateway", "open", url=url)  # registered without its token
            admin.secrets.set("gateway", "crm-token", "s3cret-token")
            servers.add("gateway", "calc", url=url, token_secret="crm-token")
            assert [(s.name, s.token_secret) for s in servers.list("gateway")] == [
                ("calc", "crm-token"),
                ("open", None),
            ]
        world.deploy([_call("calc__add", {"a": 2, "b": 3}, "c1"), "5."])
        agent = agents.agent_from_dict(
            {"name": "a", "model": "bot", "tools": [{"mcp": {"server": "calc"}}]}
        )
        run = world.runner().run(agent, "2 + 3?")
        assert (run.status, run.output) == ("completed", "5.")
        steps = world.runner().steps(run.run_id)
        assert "s3cret-token" not in json.dumps([s.detail for s in steps])
        tokenless = agents.agent_from_dict(
            {"name": "a", "model": "bot", "tools": [{"mcp": {"server": "open"}}]}
        )
        failed = world.runner().run(tokenless, "2 + 3?")
        assert failed.status == "failed" and "open" in failed.detail, failed.detail
        with genai.connect(settings, user="admin") as admin:
            admin.secrets.delete("gateway", "crm-token")
        gone = world.runner().run(agent, "2 + 3?")
        assert gone.status == "failed" and "crm-token" in gone.detail, gone.detail
    finally:
        process.kill()
        process.wait(30)


def test_the_adapter_card_tool_gathers_an_adapters_lineage(world: World, settings: Any) -> None:
    import asyncio
    import json as _json

    from agents import PlatformTool
    from agents._platform import platform_tools

    with genai.connect(settings, user="admin") as admin:
        reg = admin.registry
        base = reg.models.register(
            "gateway", "smollm2", source="HuggingFaceTB/SmolLM2-135M", license="apache-2.0"
        )
        data = reg.datasets.register("gateway", "faq", [{"q": "a?", "a": "b."}])
        with reg.runs.start(
            "gateway", "lora-sft", datasets=[data.ref], base_model=base.ref, params={"rank": 8}
        ) as run:
            run.log({"loss": 0.5}, step=1)
        reg.adapters.register(
            "gateway",
            "faq-lora",
            base_model="smollm2",
            run=run.id,
            rank=8,
            alpha=16,
            target_modules=["q_proj"],
        )
    (card,) = platform_tools(world.client, "gateway", [PlatformTool("adapter_card")])
    outcome = asyncio.run(card.invoke({"adapter": "faq-lora"}))
    assert outcome.status == "ok", outcome.content
    facts = _json.loads(outcome.content)
    assert facts["adapter"]["ref"] == "adapter:faq-lora@1" and facts["adapter"]["rank"] == 8
    assert facts["training_run"]["params"] == {"rank": 8}
    assert facts["training_run"]["metrics"] == {"loss": 0.5}
    assert any(ref.startswith("dataset:faq") for ref in facts["made_from"]), facts["made_from"]
    missing = asyncio.run(card.invoke({"adapter": "nope"}))
    assert missing.status == "error" and "not found" in missing.content


def test_the_sync_api_works_inside_a_running_loop_as_in_a_notebook(world: World) -> None:
    import asyncio

    world.deploy(["Hello from a notebook."])
    agent = agents.Agent(name="a", model="bot")

    async def cell() -> agents.RunInfo:  # a notebook cell: its loop is running
        return world.runner().run(agent, "hi")

    run = asyncio.run(cell())
    assert (run.status, run.output) == ("completed", "Hello from a notebook.")


def test_the_sync_api_keeps_one_loop_in_a_thread_until_closed(world: World) -> None:
    """Runs of one runner share its event loop (and so its connection to the gateway and
    its thread pool) instead of a new loop per run; close() stops that thread."""
    import asyncio
    import threading

    seen: list[tuple[int, str]] = []

    @agents.tool
    async def where() -> str:
        """Where the tool runs."""
        seen.append((id(asyncio.get_running_loop()), threading.current_thread().name))
        return "here"

    def threads() -> list[str]:
        return [t.name for t in threading.enumerate() if t.name == "agent-runner:gateway"]

    world.deploy([_call("where", {}, "c1"), "one", _call("where", {}, "c2"), "two", "three"])
    agent = agents.Agent(name="a", model="bot", tools=[where])
    with world.runner() as runner:
        outputs = [runner.run(agent, "where?").output for _ in range(2)]
        assert threads() == ["agent-runner:gateway"]
    assert outputs == ["one", "two"]
    assert len(seen) == 2 and seen[0] == seen[1] and seen[0][1] == "agent-runner:gateway"
    assert threads() == []
    runner = world.runner()
    assert runner.run(agent, "again").output == "three"  # started again on first use
    runner.close()
    assert threads() == []
