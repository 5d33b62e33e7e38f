"""Bring your own agent framework: a LangGraph graph and an OpenAI Agents SDK agent that a
user wrote (examples/agents/byo_*.py) get the gateway's governance by pointing their model
client at it.

Each example runs against the real gateway with a project key; the deployment is a scripted
model (the ``fake`` backend) that asks for the example's ``add`` tool once, then answers.
The tests check the answer, that the tool ran in the user's process and its result went
back to the model (a request stage records every request the gateway handles), and that
the usage ledger holds one row per model call, written for that key. A wrong key is
refused before any model call.

The LangGraph example runs in this process (langgraph and langchain-openai are in the
project's environment). The OpenAI Agents SDK is in the clients environment (.venv-clients,
tests/integration/_clients.py); its import name, ``agents``, is also this repository's
package, so the example runs there as ``python -I`` from a temporary directory, with
neither the repository nor the working directory on its ``sys.path``.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import openai
import pytest
from _clients import IN_CI, ROOT, clients_python, offline_env
from _clocks import wait_until

from genai.gateway import GatewayRequest, Stages

EXAMPLES = ROOT / "examples" / "agents"
DEPLOYMENT = "bot"
QUESTION = "What is 2 + 3?"
ANSWER = "2 + 3 = 5."
SCRIPT: list[Any] = [
    {"tool_calls": [{"id": "c1", "function": {"name": "add", "arguments": '{"a": 2, "b": 3}'}}]},
    ANSWER,
]
SDK_TIMEOUT_S = 120


@dataclass
class Recorder:
    """A request stage that keeps a copy of each request the gateway handles."""

    name: str = "recorder"
    requests: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    async def before(self, request: GatewayRequest) -> None:
        self.requests.append((request.request_id, request.deployment, copy.deepcopy(request.body)))


@dataclass
class World:
    project: Any  # _gateway_harness.GatewayProject
    v1: str
    recorder: Recorder


@pytest.fixture
def world(project: Any, gateway_server: Any, settings: Any) -> World:
    recorder = Recorder()
    gw = gateway_server(settings, stages=Stages(request=[recorder]))
    spec = {"targets": [{"name": "m", "backend": "fake", "options": {"replies": SCRIPT}}]}
    project.deploy(spec, name=DEPLOYMENT)
    return World(project, gw.v1, recorder)


@pytest.fixture
def byo_langgraph() -> Iterator[ModuleType]:
    """examples/agents/byo_langgraph.py, imported (examples/ is not a package)."""
    name = "byo_langgraph"
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # for its dataclass
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[name]


def sdk_python(workdir: Path) -> Path:
    """The clients environment's python once it has the OpenAI Agents SDK; otherwise skip
    the test, or fail it under ``CI=true``. The probe runs as the example will (``-I``, in
    ``workdir``), so this repository's ``agents`` cannot pass for the SDK."""
    python = clients_python("openai")
    probe = (
        "import importlib.util, json, sys; spec = importlib.util.find_spec('agents'); "
        "print(json.dumps([spec and spec.origin, sys.prefix, sys.path]))"
    )
    found = subprocess.run(
        [str(python), "-I", "-c", probe],
        cwd=workdir,
        env=offline_env(workdir),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    origin, prefix, path = json.loads(found.stdout)
    assert not any(Path(p or ".").resolve() == ROOT for p in path), path
    if origin is None or not Path(origin).is_relative_to(prefix):
        message = (
            f"the OpenAI Agents SDK (openai-agents) is not installed in {prefix} "
            f"(`import agents` finds {origin}); build it with `make clients`"
        )
        if IN_CI:
            pytest.fail(message + " (it is mandatory under CI=true)")
        pytest.skip(message)
    return python


def assert_governed(world: World) -> None:
    """Both model calls went through the gateway, the tool's result reached the model in
    the second, and each call is a ledger row of the project's key."""
    requests = world.recorder.requests
    assert [deployment for _, deployment, _ in requests] == [DEPLOYMENT, DEPLOYMENT]
    first, second = (body for _, _, body in requests)
    assert [t["function"]["name"] for t in first["tools"]] == ["add"]
    assert first["messages"][-1]["content"] == QUESTION
    calls = [m for m in second["messages"] if m["role"] == "assistant" and m.get("tool_calls")]
    assert [c["id"] for m in calls for c in m["tool_calls"]] == ["c1"]
    results = [m for m in second["messages"] if m["role"] == "tool"]
    assert [(m["tool_call_id"], m["content"]) for m in results] == [("c1", "5")], results

    assert wait_until(lambda: world.project.count() == 2, 10), world.project.count()
    rows = sorted(world.project.rows(), key=lambda r: r.id)
    assert [r.request_id for r in rows] == [request_id for request_id, _, _ in requests]
    assert {(r.model, r.status) for r in rows} == {(DEPLOYMENT, "ok")}
    assert len({r.key_id for r in rows}) == 1 and rows[0].key_id is not None
    assert all(r.prompt_tokens > 0 for r in rows)


def test_a_langgraph_graph_is_governed_by_the_gateway(
    world: World, byo_langgraph: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("GENAI_GATEWAY_URL", world.v1)
    monkeypatch.setenv("GENAI_API_KEY", world.project.key)
    byo_langgraph.main([DEPLOYMENT, QUESTION])
    assert capsys.readouterr().out.splitlines() == ["[tool] 5", ANSWER]
    assert_governed(world)


def test_a_langgraph_graph_with_a_wrong_key_reaches_no_model(
    world: World, byo_langgraph: ModuleType
) -> None:
    with pytest.raises(openai.AuthenticationError):
        byo_langgraph.run(world.v1, "gk_not-a-key", DEPLOYMENT, QUESTION)
    assert world.recorder.requests == []
    assert world.project.count() == 0


@pytest.mark.slow
def test_an_openai_agents_sdk_agent_is_governed_by_the_gateway(
    world: World, tmp_path: Path
) -> None:
    python = sdk_python(tmp_path)
    env = offline_env(tmp_path)
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID"):
        env.pop(name, None)  # the gateway and its key are all the agent needs
    env |= {"GENAI_GATEWAY_URL": world.v1, "GENAI_API_KEY": world.project.key}
    done = subprocess.run(
        [str(python), "-I", str(EXAMPLES / "byo_openai_agents.py"), DEPLOYMENT, QUESTION],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=SDK_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines() == ["[tool] 5", ANSWER], (done.stdout, done.stderr[-3000:])
    assert_governed(world)
