"""Hosted agents: a deployment with ``backend: agent`` called by the openai SDK through the
real gateway — whole and streamed answers, sessions, the ledger, refusals."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from _clocks import wait_until
from sqlalchemy import select

from apps._agent_target import AgentPolicy, AgentTarget
from apps.gateway import bind_agents
from genai.errors import ValidationError
from genai.gateway import GatewayOptions, Stages
from genai.store import Store
from genai.store import schema as t

ALLOWED = AgentPolicy(python_modules=("_agent_tools",))


def _call(name: str, arguments: dict[str, Any], call_id: str) -> dict[str, Any]:
    return {
        "tool_calls": [
            {"id": call_id, "function": {"name": name, "arguments": json.dumps(arguments)}}
        ]
    }


def _agent(model: str = "model", **extra: Any) -> dict[str, Any]:
    return {
        "name": "helper",
        "model": model,
        "instructions": "Use the tools.",
        "tools": [{"python": "_agent_tools:weather"}],
        **extra,
    }


@pytest.fixture
def hosted(project: Any, gateway_server: Any, settings: Any) -> Iterator[Any]:
    store = Store(settings.resolved_database_url)
    stages = Stages(targets={"agent": AgentTarget(settings, store, policy=ALLOWED)})
    gw = gateway_server(settings, stages=stages, options=GatewayOptions(ledger_interval_s=0.05))
    bind_agents(stages, gw.app)
    yield gw
    store.dispose()


def _deploy(project: Any, replies: list[Any], agent: dict[str, Any] | None = None) -> None:
    project.deploy(
        {"targets": [{"name": "m", "backend": "fake", "options": {"replies": replies}}]},
        name="model",
    )
    project.deploy(
        {"targets": [{"name": "a", "backend": "agent", "options": {"agent": agent or _agent()}}]},
        name="helper",
    )


def test_the_openai_sdk_calls_an_agent_and_every_model_call_is_a_ledger_row(
    project: Any, hosted: Any
) -> None:
    _deploy(project, [_call("weather", {"city": "Paris"}, "c1"), "Sunny in Paris."])
    client = openai.OpenAI(base_url=hosted.v1, api_key=project.key)
    answer = client.chat.completions.create(
        model="helper", messages=[{"role": "user", "content": "Weather in Paris?"}]
    )
    assert answer.choices[0].message.content == "Sunny in Paris."
    run = (answer.model_extra or {})["agent_run"]
    assert (run["status"], run["steps"]) == ("completed", 2)
    assert wait_until(lambda: project.count() == 3, 10), project.count()
    rows = project.rows()
    assert sorted(r.model for r in rows) == ["helper", "model", "model"]
    assert [r.prompt_tokens + r.completion_tokens for r in rows if r.model == "helper"] == [0]


def test_a_streamed_agent_sends_text_deltas_and_tool_events(project: Any, hosted: Any) -> None:
    _deploy(project, [_call("weather", {"city": "Oslo"}, "c1"), "Sunny in Oslo."])
    body = {"model": "helper", "stream": True, "messages": [{"role": "user", "content": "Oslo?"}]}
    headers = {"authorization": f"Bearer {project.key}"}
    chunks = []
    with httpx.stream(
        "POST", hosted.v1 + "/chat/completions", json=body, headers=headers, timeout=30
    ) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                chunks.append(json.loads(line[6:]))
    events = [c["agent_event"] for c in chunks if "agent_event" in c]
    assert [(e["type"], e.get("name")) for e in events] == [
        ("tool_call", "weather"),
        ("tool_result", "weather"),
    ]
    assert events[1]["content"] == "sunny in Oslo"
    text = "".join(
        c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices")
    )
    assert text == "Sunny in Oslo."
    (run,) = [c["agent_run"] for c in chunks if "agent_run" in c]
    assert run["status"] == "completed"


def test_a_session_goes_on_from_its_last_run(project: Any, hosted: Any) -> None:
    _deploy(project, ["Hello Ada.", "Your name is Ada."])
    client = openai.OpenAI(base_url=hosted.v1, api_key=project.key)
    session = {"x-genai-session": "conversation-1"}
    client.chat.completions.create(
        model="helper", messages=[{"role": "user", "content": "I am Ada."}], extra_headers=session
    )
    second = client.chat.completions.create(
        model="helper", messages=[{"role": "user", "content": "Who am I?"}], extra_headers=session
    )
    assert second.choices[0].message.content == "Your name is Ada."
    with project.admin.store.session() as s:
        runs = s.scalars(select(t.AgentRun).order_by(t.AgentRun.id)).all()
    assert [m["content"] for m in runs[1].input] == ["I am Ada.", "Hello Ada.", "Who am I?"]


def test_a_tool_module_the_operator_did_not_allow_is_refused(project: Any, hosted: Any) -> None:
    agent = _agent(tools=[{"python": "os:system"}])
    _deploy(project, ["never"], agent=agent)
    client = openai.OpenAI(base_url=hosted.v1, api_key=project.key, max_retries=0)
    with pytest.raises(openai.BadRequestError, match="GENAI_AGENT_TOOL_MODULES"):
        client.chat.completions.create(model="helper", messages=[{"role": "user", "content": "hi"}])


def test_agents_calling_agents_in_a_loop_are_stopped(project: Any, hosted: Any) -> None:
    project.deploy(
        {
            "targets": [
                {"name": "a", "backend": "agent", "options": {"agent": _agent(model="loop-b")}}
            ]
        },
        name="loop-a",
    )
    project.deploy(
        {
            "targets": [
                {"name": "a", "backend": "agent", "options": {"agent": _agent(model="loop-a")}}
            ]
        },
        name="loop-b",
    )
    client = openai.OpenAI(base_url=hosted.v1, api_key=project.key, max_retries=0)
    with pytest.raises(openai.APIStatusError, match="deep") as caught:
        client.chat.completions.create(model="loop-a", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 502


def test_an_agents_answer_is_never_cached(project: Any, settings: Any, gateway_server: Any) -> None:
    from apps._cache import GatewayCache
    from cache import ProjectCaches, SemanticCache
    from genai.testing import FakeEmbedder
    from genai.vectors import InMemoryVectorStore

    _deploy(project, ["first", "second"])
    plain = {"targets": [{"name": "m", "backend": "fake", "options": {"replies": ["a", "b"]}}]}
    project.deploy(plain, name="plain")
    for deployment in ("helper", "plain"):
        ProjectCaches(project.admin).enable(project.name, deployment)
    store = Store(settings.resolved_database_url)
    cache = SemanticCache(InMemoryVectorStore(), FakeEmbedder(words=True), store=store)
    stages = Stages(
        targets={"agent": AgentTarget(settings, store, policy=ALLOWED)},
        cache=GatewayCache(cache, store=store, revision_ttl_s=0.0),
    )
    gw = gateway_server(settings, stages=stages)
    bind_agents(stages, gw.app)
    client = openai.OpenAI(base_url=gw.v1, api_key=project.key)
    messages: Any = [{"role": "user", "content": "same question"}]
    answers = []
    for deployment in ("plain", "helper", "plain", "helper"):
        raw = client.chat.completions.with_raw_response.create(model=deployment, messages=messages)
        answers.append(
            (deployment, raw.parse().choices[0].message.content, raw.headers.get("x-genai-cache"))
        )
        if deployment == "plain":  # the control: the cache does store and answer
            assert wait_until(lambda: _entries(store, project.id) >= 1, 10)
    assert answers == [
        ("plain", "a", "miss"),
        ("helper", "first", "miss"),
        ("plain", "a", "hit"),
        ("helper", "second", "miss"),
    ]
    assert _entries(store, project.id) == 1  # the agent's answers were not stored
    cache.close()
    store.dispose()


def _entries(store: Store, project_id: int) -> int:
    from sqlalchemy import func

    with store.session() as s:
        query = select(func.count()).where(t.CacheEntry.project_id == project_id)
        return int(s.scalar(query) or 0)


def test_a_hosted_run_that_waits_for_approval_goes_on_from_its_deployment(
    project: Any, hosted: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import genai
    from agents import AgentRunner
    from apps._agent_target import deployed_agent

    tool = {"python": "_agent_tools:weather", "requires_approval": True}
    _deploy(
        project, [_call("weather", {"city": "Rome"}, "c1"), "Sunny in Rome."], _agent(tools=[tool])
    )
    client = openai.OpenAI(base_url=hosted.v1, api_key=project.key)
    answer = client.chat.completions.create(
        model="helper", messages=[{"role": "user", "content": "Rome?"}]
    )
    run = (answer.model_extra or {})["agent_run"]
    assert run["status"] == "awaiting_approval"
    assert answer.choices[0].message.content == f"(waiting for approval: run {run['id']})"
    monkeypatch.setenv("GENAI_AGENT_TOOL_MODULES", "_agent_tools")  # this process's policy
    with genai.connect(settings, user="admin") as admin:
        runner = AgentRunner(admin, project.name, gateway=hosted.v1, api_key=project.key)
        runner.approve(run["id"], "c1")
        assert runner.get(run["id"]).definition["deployment"] == "helper"
        done = runner.resume(run["id"], deployed_agent(admin, project.name, "helper"))
    assert (done.status, done.output) == ("completed", "Sunny in Rome.")


def test_the_admin_api_lists_and_decides_approvals_and_resumes_the_hosted_run(
    project: Any, gateway_server: Any, settings: Any
) -> None:
    from _gateway_harness import new_project

    import genai
    from apps.admin import mount_admin

    store = Store(settings.resolved_database_url)
    stages = Stages(targets={"agent": AgentTarget(settings, store, policy=ALLOWED)})
    gw = gateway_server(settings, stages=stages, admin=mount_admin)
    bind_agents(stages, gw.app)
    tool = {"python": "_agent_tools:weather", "requires_approval": True}
    _deploy(
        project, [_call("weather", {"city": "Rome"}, "c1"), "Sunny in Rome."], _agent(tools=[tool])
    )
    with genai.connect(settings, user="admin") as admin:
        maintainer = admin.keys.create(project.name, role="maintainer", name="ops").secret
        outsider = new_project(admin, "other").key
    client = openai.OpenAI(base_url=gw.v1, api_key=project.key)
    answer = client.chat.completions.create(
        model="helper", messages=[{"role": "user", "content": "Rome?"}]
    )
    run_id = (answer.model_extra or {})["agent_run"]["id"]
    path = f"/api/projects/{project.name}/agent-approvals"

    def call(method: str, url: str, key: str, **kwargs: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {key}"}
        return httpx.request(method, gw.url + url, headers=headers, timeout=30, **kwargs)

    listed = call("GET", path, project.key)
    assert listed.status_code == 200
    assert [(a["run_id"], a["call_id"], a["tool"]) for a in listed.json()] == [
        (run_id, "c1", "weather")
    ]
    assert call("GET", f"/api/projects/{project.name}/agent-approvals", outsider).status_code == 404
    refused = call("POST", f"{path}/{run_id}/c1", project.key, json={"decision": "approve"})
    assert refused.status_code == 403  # a developer may not decide
    bad = call("POST", f"{path}/{run_id}/c1", maintainer, json={"decision": "edit"})
    assert bad.status_code == 400 and "arguments" in bad.text
    decided = call("POST", f"{path}/{run_id}/c1", maintainer, json={"decision": "approve"})
    assert decided.status_code == 200, decided.text
    assert decided.json()["resumed"] is True and decided.json()["approval"]["status"] == "approved"
    with genai.connect(settings, user="admin") as admin:
        runner = __import__("agents").AgentRunner(
            admin, project.name, gateway=gw.v1, api_key=project.key
        )
        assert wait_until(lambda: runner.get(run_id).status == "completed", 20)
        assert runner.get(run_id).output == "Sunny in Rome."
    again = call("POST", f"{path}/{run_id}/c1", maintainer, json={"decision": "reject"})
    assert again.status_code == 409  # a decision is final
    store.dispose()


def test_a_deployment_that_is_malformed_loops_on_itself_or_shadows_to_an_agent_is_refused(
    project: Any,
) -> None:
    from apps.deployments import apply_spec

    agent_target = {"name": "a", "backend": "agent", "options": {"agent": _agent(tools=[])}}
    with pytest.raises(ValidationError, match="names the deployment itself"):
        apply_spec(project.admin, project.name, "model", {"targets": [agent_target]})
    shadowed = {
        "targets": [{"name": "m", "backend": "fake"}],
        "shadow": {"target": agent_target},
    }
    with pytest.raises(ValidationError, match="shadows to an agent"):
        apply_spec(project.admin, project.name, "plain", shadowed)
    unknown = {"name": "a", "backend": "agent", "options": {"agent": _agent(tools=[]), "x": 1}}
    with pytest.raises(ValidationError, match="unknown options"):
        apply_spec(project.admin, project.name, "other", {"targets": [unknown]})
