"""The adapter agent of a GenAIDeployment's pods, against real parts: a local artifact store,
vLLM's OpenAI server (``FakeOpenAIServer`` checking adapter directories as vLLM does), the
agent served by uvicorn, and the operator's side (``AgentClient``, ``carry_out``) running
the adapter actions of real reconcile plans. Adapter changes never restart vLLM."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from _clocks import wait_until
from _servers import free_port

from genai.deploy import (
    AgentClient,
    Observed,
    PodState,
    ResolvedAdapter,
    ResolvedDeployment,
    ResolvedModel,
    ResolvedRevision,
    RevisionState,
    agent_app,
    agent_url,
    carry_out,
    parse_k8s_spec,
    reconcile,
)
from genai.errors import BackendError
from genai.registry import ArtifactStore
from genai.testing import FakeOpenAIServer, running_server

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Store:
    url: str
    v1: str  # support-tone@1's directory
    v2: str  # support-tone@2's
    billing: str  # another adapter
    broken: str  # a directory without adapter_config.json: vLLM refuses it
    a_file: str  # the digest of a blob that is not a directory


@dataclass
class Pod:
    """One vLLM pod: its (fake) vLLM, its agent, the volume they share."""

    vllm: FakeOpenAIServer
    agent: str  # the agent's base URL
    adapters: Path

    def put(self, name: str, body: Any) -> httpx.Response:
        return httpx.put(f"{self.agent}/adapters/{name}", json=body, timeout=30)

    def delete(self, name: str) -> httpx.Response:
        return httpx.delete(f"{self.agent}/adapters/{name}", timeout=30)

    def listing(self) -> dict[str, str]:
        """What the agent reports served: name → artifact digest (and checks each path)."""
        answer = httpx.get(f"{self.agent}/adapters", timeout=30)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        adapters: dict[str, str] = body["adapters"]
        assert body["paths"] == {n: str(self.adapters / d) for n, d in adapters.items()}
        return adapters

    def chat(self, model: str) -> httpx.Response:
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
        return httpx.post(self.vllm.url + "/v1/chat/completions", json=body, timeout=30)


def _adapter_dir(root: Path, name: str, *, rank: int = 8, config: bool = True) -> Path:
    root.mkdir(parents=True)
    if config:
        (root / "adapter_config.json").write_text(
            json.dumps({"peft_type": "LORA", "r": rank, "target_modules": ["q_proj", "v_proj"]})
        )
    (root / "adapter_model.safetensors").write_bytes(name.encode() * 64)
    return root


@pytest.fixture
def store(tmp_path: Path) -> Store:
    root = tmp_path / "store"
    artifacts = ArtifactStore(str(root))
    made = tmp_path / "made"
    return Store(
        url=str(root),
        v1=artifacts.put_dir(_adapter_dir(made / "v1", "tone-v1")),
        v2=artifacts.put_dir(_adapter_dir(made / "v2", "tone-v2")),
        billing=artifacts.put_dir(_adapter_dir(made / "billing", "billing")),
        broken=artifacts.put_dir(_adapter_dir(made / "broken", "broken", config=False)),
        a_file=artifacts.put_bytes(b"not a directory"),
    )


@contextlib.contextmanager
def _pod(store: Store, volume: Path, *, serve: Any = running_server) -> Iterator[Pod]:
    with FakeOpenAIServer(base_model="smollm2", check_lora_paths=True) as vllm:
        app = agent_app(artifacts_url=store.url, adapters_dir=volume, vllm_url=vllm.url)
        with serve(app) as url:
            yield Pod(vllm, url, volume)


@pytest.fixture
def pod(store: Store, tmp_path: Path) -> Iterator[Pod]:
    with _pod(store, tmp_path / "pod-a" / "adapters") as running:
        yield running


@contextlib.contextmanager
def _serve_ipv6(app: Any, port: int) -> Iterator[str]:
    """Serve ``app`` on [::1]:``port``: a second "pod" whose agent listens on the same port
    as the first one's, as every pod's agent does (``carry_out`` takes one port)."""
    import uvicorn

    sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("::1", port))
    server = uvicorn.Server(uvicorn.Config(app, log_level="critical", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: server.started or not thread.is_alive(), timeout=15)
        assert server.started, "the IPv6 agent did not start"
        yield f"http://[::1]:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


# ------------------------------------------------------------------ the agent's API


def test_a_load_fetches_the_adapter_and_vllm_serves_it(pod: Pod, store: Store) -> None:
    assert httpx.get(pod.agent + "/health", timeout=10).status_code == 200
    assert pod.listing() == {}
    loaded = pod.put("support-tone", {"artifact": store.v1})
    assert loaded.status_code == 200, loaded.text
    path = pod.adapters / store.v1
    assert loaded.json() == {
        "adapter": "support-tone",
        "artifact": store.v1,
        "path": str(path),
        "changed": True,
        "replaced": None,
    }
    assert (path / "adapter_config.json").is_file()
    assert pod.listing() == {"support-tone": store.v1}
    assert pod.vllm.last("/v1/load_lora_adapter") == {
        "lora_name": "support-tone",
        "lora_path": str(path),
    }
    answer = pod.chat("support-tone")
    assert answer.status_code == 200
    assert answer.json()["choices"][0]["message"]["content"].startswith("[support-tone]")


def test_loading_the_same_version_again_changes_nothing(pod: Pod, store: Store) -> None:
    assert pod.put("support-tone", {"artifact": store.v1}).status_code == 200
    again = pod.put("support-tone", {"artifact": store.v1})
    assert again.status_code == 200 and again.json()["changed"] is False
    assert len(pod.vllm.bodies("/v1/load_lora_adapter")) == 1
    assert pod.vllm.bodies("/v1/unload_lora_adapter") == []
    assert pod.vllm.starts == 1


def test_a_new_version_under_the_same_name_swaps_in_place(pod: Pod, store: Store) -> None:
    assert pod.put("support-tone", {"artifact": store.v1}).status_code == 200
    assert pod.put("billing", {"artifact": store.billing}).status_code == 200
    swapped = pod.put("support-tone", {"artifact": store.v2})
    assert swapped.status_code == 200, swapped.text
    assert swapped.json()["changed"] is True
    assert swapped.json()["replaced"] == str(pod.adapters / store.v1)
    assert pod.listing() == {"support-tone": store.v2, "billing": store.billing}
    assert pod.vllm.last("/v1/unload_lora_adapter") == {"lora_name": "support-tone"}
    assert pod.vllm.last("/v1/load_lora_adapter")["lora_path"] == str(pod.adapters / store.v2)
    # the version no longer served leaves the shared volume; the others stay
    assert sorted(p.name for p in pod.adapters.iterdir()) == sorted([store.v2, store.billing])
    assert pod.chat("support-tone").status_code == 200
    assert pod.vllm.starts == 1  # vLLM kept running: no pod restart


def test_an_unload_removes_the_adapter_and_an_unknown_name_is_a_no_op(
    pod: Pod, store: Store
) -> None:
    assert pod.put("support-tone", {"artifact": store.v1}).status_code == 200
    gone = pod.delete("support-tone")
    assert gone.status_code == 200 and gone.json() == {"adapter": "support-tone", "changed": True}
    assert pod.listing() == {}
    assert pod.chat("support-tone").status_code == 404
    assert list(pod.adapters.iterdir()) == []
    again = pod.delete("support-tone")
    assert again.status_code == 200 and again.json()["changed"] is False
    assert len(pod.vllm.bodies("/v1/unload_lora_adapter")) == 1
    assert pod.vllm.starts == 1


@pytest.mark.parametrize(
    ("name", "body", "status", "says"),
    [
        ("-tone", {"artifact": "0" * 64}, 400, "not an adapter name"),
        ("x" * 101, {"artifact": "0" * 64}, 400, "not an adapter name"),
        ("tone", {"artifact": "latest"}, 400, "not an artifact digest"),
        ("tone", {"artifact": "A" * 64}, 400, "not an artifact digest"),
        ("tone", {"digest": "0" * 64}, 400, '{"artifact": DIGEST}'),
        ("tone", None, 400, '{"artifact": DIGEST}'),
        ("tone", {"artifact": "0" * 64}, 404, "missing"),
    ],
)
def test_bad_requests_are_refused_with_a_message(
    pod: Pod, name: str, body: Any, status: int, says: str
) -> None:
    answer = pod.put(name, body)
    assert answer.status_code == status
    assert says in answer.json()["error"]
    assert pod.vllm.bodies("/v1/load_lora_adapter") == []


def test_a_blob_that_is_not_a_directory_is_refused(pod: Pod, store: Store) -> None:
    answer = pod.put("tone", {"artifact": store.a_file})
    assert answer.status_code == 400 and "not a directory" in answer.json()["error"]
    assert pod.delete("-bad").status_code == 400


def test_vllm_refusing_an_adapter_is_a_502_with_its_message(pod: Pod, store: Store) -> None:
    refused = pod.put("support-tone", {"artifact": store.broken})
    assert refused.status_code == 502
    assert "No adapter found" in refused.json()["error"]
    assert pod.listing() == {}
    # a swap vLLM refuses puts the served version back
    assert pod.put("support-tone", {"artifact": store.v1}).status_code == 200
    assert pod.put("support-tone", {"artifact": store.broken}).status_code == 502
    assert pod.listing() == {"support-tone": store.v1}
    assert pod.vllm.starts == 1


def test_an_unreachable_vllm_is_a_502(store: Store, tmp_path: Path) -> None:
    app = agent_app(
        artifacts_url=store.url,
        adapters_dir=tmp_path / "adapters",
        vllm_url=f"http://127.0.0.1:{free_port()}",
    )
    with running_server(app) as url:
        assert httpx.get(url + "/health", timeout=10).status_code == 200
        listing = httpx.get(url + "/adapters", timeout=10)
        assert listing.status_code == 502 and "did not answer" in listing.json()["error"]
        put = httpx.put(url + "/adapters/tone", json={"artifact": store.v1}, timeout=10)
        assert put.status_code == 502 and "did not answer" in put.json()["error"]


def test_corrupted_artifacts_are_a_502_and_nothing_is_loaded(pod: Pod, store: Store) -> None:
    blob = ArtifactStore(store.url).manifest(store.v1)["adapter_config.json"]["sha256"]
    (Path(store.url) / "sha256" / blob[:2] / blob).write_bytes(b"{}")
    answer = pod.put("support-tone", {"artifact": store.v1})
    assert answer.status_code == 502 and "corrupted" in answer.json()["error"]
    assert pod.vllm.bodies("/v1/load_lora_adapter") == []


# ------------------------------------------------------------------ the fake vLLM


def test_the_fake_vllm_answers_health_and_metrics() -> None:
    with FakeOpenAIServer(base_model="smollm2", reply="slow answer") as vllm:
        assert httpx.get(vllm.url + "/health", timeout=10).status_code == 200
        vllm.waiting = 3
        vllm.delay_s = 0.3
        body = {"model": "smollm2", "messages": [{"role": "user", "content": "hi"}]}
        thread = threading.Thread(
            target=lambda: httpx.post(vllm.url + "/v1/chat/completions", json=body, timeout=30)
        )
        thread.start()
        assert wait_until(lambda: vllm.running == 1, timeout=10)
        during = httpx.get(vllm.url + "/metrics", timeout=10).text
        thread.join()
        after = httpx.get(vllm.url + "/metrics", timeout=10).text
    assert "# TYPE vllm:num_requests_waiting gauge" in during
    assert 'vllm:num_requests_waiting{engine="0",model_name="smollm2"} 3.0' in during
    assert 'vllm:num_requests_running{engine="0",model_name="smollm2"} 1.0' in during
    assert 'vllm:num_requests_running{engine="0",model_name="smollm2"} 0.0' in after
    assert vllm.starts == 1


def test_the_fake_vllm_loads_only_real_adapter_directories(tmp_path: Path) -> None:
    good = _adapter_dir(tmp_path / "good", "good")
    bare = _adapter_dir(tmp_path / "bare", "bare", config=False)
    with FakeOpenAIServer(base_model="smollm2", check_lora_paths=True) as vllm:
        load = vllm.url + "/v1/load_lora_adapter"
        for path in (bare, tmp_path / "absent", good / "adapter_config.json"):
            refused = httpx.post(load, json={"lora_name": "a", "lora_path": str(path)}, timeout=10)
            assert refused.status_code == 400
            assert "No adapter found" in refused.json()["error"]["message"]
        ok = httpx.post(load, json={"lora_name": "a", "lora_path": str(good)}, timeout=10)
        assert ok.status_code == 200
        models = httpx.get(vllm.url + "/v1/models", timeout=10).json()["data"]
        assert [(m["id"], m["root"], m["parent"]) for m in models[1:]] == [
            ("a", str(good), "smollm2")
        ]


# ------------------------------------------------------------------ the operator's side


def _deployment(store: Store, *, stable: str, canary: str, extra: str = "") -> ResolvedDeployment:
    """support-bot: stable (90%) and canary (10%) revisions, each serving support-tone at a
    version of its own (and, with ``extra``, a billing adapter too)."""
    adapters = [{"ref": "support-tone@1"}] + ([{"ref": "billing@1"}] if extra else [])
    canary_adapters = [{"ref": "support-tone@2", "name": "support-tone"}] + (
        [{"ref": "billing@1"}] if extra else []
    )
    spec = parse_k8s_spec(
        {
            "project": "support",
            "model": "smollm2@1",
            "adapters": adapters,
            "traffic": {
                "revisions": [
                    {"name": "stable", "weight": 90},
                    {"name": "canary", "weight": 10, "adapters": canary_adapters},
                ]
            },
        }
    )
    model = ResolvedModel("model:smollm2@1", "smollm2", "HuggingFaceTB/SmolLM2-135M", "", "")
    billing = (ResolvedAdapter("billing", "adapter:billing@1", extra, 8),) if extra else ()
    revisions = (
        ResolvedRevision(
            "stable",
            90.0,
            model,
            (ResolvedAdapter("support-tone", "adapter:support-tone@1", stable, 8), *billing),
            spec.engine.image,
            None,
        ),
        ResolvedRevision(
            "canary",
            10.0,
            model,
            (ResolvedAdapter("support-tone", "adapter:support-tone@2", canary, 8), *billing),
            spec.engine.image,
            None,
        ),
    )
    return ResolvedDeployment(
        name="support-bot",
        namespace="support",
        uid="",
        generation=1,
        spec=spec,
        revisions=revisions,
        gpu_quota=None,
        artifacts_url="s3://genai/artifacts",
    )


async def _observe(pods: dict[str, tuple[str, str]], port: int) -> Observed:
    """What the operator sees: each revision's one ready pod and the adapters its agent
    reports (``pods``: revision → (pod name, pod IP))."""
    revisions = {}
    for revision, (name, ip) in pods.items():
        async with AgentClient(agent_url(ip, port)) as agent:
            loaded = await agent.loaded()
        pod = PodState(name, ip, True, loaded)
        revisions[revision] = RevisionState(1, 1, 1, True, (pod,))
    return Observed(revisions=revisions)


def _weights(deployment: ResolvedDeployment, observed: Observed) -> list[tuple[str, float]]:
    plan = reconcile(deployment, observed, now=NOW)
    assert plan.gateway is not None
    return [(t.name, t.weight) for t in plan.gateway.targets]


def test_carry_out_runs_reconcile_plans_and_keeps_the_traffic_split(
    store: Store, tmp_path: Path
) -> None:
    with _pod(store, tmp_path / "stable" / "adapters") as stable:
        port = int(stable.agent.rsplit(":", 1)[1])
        with _pod(
            store, tmp_path / "canary" / "adapters", serve=lambda a: _serve_ipv6(a, port)
        ) as canary:
            pods = {
                "stable": ("support-bot-stable-0", "127.0.0.1"),
                "canary": ("support-bot-canary-0", "::1"),
            }
            deployment = _deployment(store, stable=store.v1, canary=store.v2)

            # new pods: every adapter to load; no revision serves yet
            observed = asyncio.run(_observe(pods, port))
            plan = reconcile(deployment, observed, now=NOW)
            assert plan.gateway is None
            assert [(a.pod_ip, a.op, a.adapter, a.artifact) for a in plan.adapters] == [
                ("127.0.0.1", "load", "support-tone", store.v1),
                ("::1", "load", "support-tone", store.v2),
            ]
            assert asyncio.run(carry_out(plan.adapters, port=port)) == []
            assert stable.listing() == {"support-tone": store.v1}
            assert canary.listing() == {"support-tone": store.v2}
            observed = asyncio.run(_observe(pods, port))
            settled = reconcile(deployment, observed, now=NOW)
            assert settled.adapters == [] and settled.ready
            assert _weights(deployment, observed) == [("stable", 90.0), ("canary", 10.0)]

            # an adapter change (billing added everywhere) rolls out on the running pods
            changed = _deployment(store, stable=store.v1, canary=store.v2, extra=store.billing)
            plan = reconcile(changed, observed, now=NOW)
            assert [(a.pod_ip, a.op, a.adapter) for a in plan.adapters] == [
                ("127.0.0.1", "load", "billing"),
                ("::1", "load", "billing"),
            ]
            assert asyncio.run(carry_out(plan.adapters, port=port)) == []
            observed = asyncio.run(_observe(pods, port))
            after = reconcile(changed, observed, now=NOW)
            assert after.adapters == []
            assert _weights(changed, observed) == [("stable", 90.0), ("canary", 10.0)]
            assert after.gateway is not None and after.gateway.adapters == [
                "billing",
                "support-tone",
            ]

            # and back: billing unloaded, the split unchanged
            plan = reconcile(deployment, observed, now=NOW)
            assert {(a.op, a.adapter) for a in plan.adapters} == {("unload", "billing")}
            assert asyncio.run(carry_out(plan.adapters, port=port)) == []
            observed = asyncio.run(_observe(pods, port))
            assert reconcile(deployment, observed, now=NOW).adapters == []
            assert _weights(deployment, observed) == [("stable", 90.0), ("canary", 10.0)]

            # a new version under the same name: stable moves to support-tone@2 in place
            promoted = _deployment(store, stable=store.v2, canary=store.v2)
            plan = reconcile(promoted, observed, now=NOW)
            assert [(a.pod_ip, a.op, a.adapter, a.artifact) for a in plan.adapters] == [
                ("127.0.0.1", "load", "support-tone", store.v2)
            ]
            assert asyncio.run(carry_out(plan.adapters, port=port)) == []
            assert stable.listing() == {"support-tone": store.v2}
            observed = asyncio.run(_observe(pods, port))
            assert reconcile(promoted, observed, now=NOW).adapters == []
            assert _weights(promoted, observed) == [("stable", 90.0), ("canary", 10.0)]
            assert stable.vllm.starts == 1 and canary.vllm.starts == 1


def test_carry_out_reports_each_failure_and_goes_on(pod: Pod, store: Store) -> None:
    port = int(pod.agent.rsplit(":", 1)[1])
    deployment = _deployment(store, stable=store.v1, canary=store.v2)
    plan = reconcile(
        deployment,
        Observed(
            revisions={
                "stable": RevisionState(1, 1, 1, True, (PodState("gone-0", "10.0.0.9", True, {}),)),
                "canary": RevisionState(
                    1, 1, 1, True, (PodState("canary-0", "127.0.0.1", True, {}),)
                ),
            }
        ),
        now=NOW,
    )
    broken = replace(plan.adapters[1], adapter="billing", artifact=store.broken)
    failures = asyncio.run(carry_out([*plan.adapters, broken], port=port))
    assert len(failures) == 2
    assert failures[0].startswith("pod gone-0 of revision 'stable': load adapter 'support-tone'")
    assert "did not answer" in failures[0]
    assert failures[1].startswith("pod canary-0 of revision 'canary': load adapter 'billing'")
    assert "No adapter found" in failures[1]
    # the reachable pod still got its good change
    assert pod.listing() == {"support-tone": store.v2}


def test_the_agent_client_raises_backend_errors(pod: Pod, store: Store) -> None:
    async def scenario() -> None:
        async with AgentClient(pod.agent) as agent:
            assert await agent.health()
            assert await agent.load("support-tone", store.v1) is True
            assert await agent.load("support-tone", store.v1) is False
            assert await agent.load("support-tone", store.v2) is True  # a swap
            assert await agent.loaded() == {"support-tone": store.v2}
            with pytest.raises(BackendError) as refused:
                await agent.load("support-tone", "0" * 64)
            assert refused.value.status == 404 and "missing" in refused.value.message
            assert await agent.unload("support-tone") is True
            assert await agent.unload("support-tone") is False
        async with AgentClient(f"http://127.0.0.1:{free_port()}") as dead:
            assert not await dead.health()
            with pytest.raises(BackendError) as unreachable:
                await dead.loaded()
            assert unreachable.value.retryable and unreachable.value.status is None

    asyncio.run(scenario())
    assert pod.vllm.starts == 1
