"""The GenAIDeployment operator against a local fake Kubernetes API (kmock's emulator), a
real registry (SQLite), and real pods' stand-ins: the adapter agent and a fake vLLM server
on 127.0.0.1. No cluster: the Deployment controller and the kubelet are the test, which
writes the Deployments' status and the Pods the way they would.

- one reconcile step at a time (:meth:`Operator.reconcile`): objects applied, adapters
  loaded, swapped and unloaded on a running pod without a restart, canary weights moved
  while the pods stay as they are, the gateway's deployment revisions, refusals as status;
- kopf's handlers (create, update, resume, delete with its finalizer) in a running operator.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import kmock
import pytest

from apps.k8s import KubeApi, Operator, OperatorConfig, run_operator
from genai import Client
from genai.deploy import GROUP, agent_app
from genai.gateway import parse_spec
from genai.testing import FakeOpenAIServer, running_server

pytestmark = pytest.mark.sqlite_only  # the operator does not depend on the database

P = "support"
NS = "genai-support"
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
CRS = f"/apis/{GROUP}/v1alpha1/namespaces/{NS}/genaideployments"
RESOURCES = {
    f"{GROUP}/v1alpha1/genaideployments": ("GenAIDeployment", True, ["status"]),
    "v1/namespaces": ("Namespace", False, []),  # discovered; never listed (scan=False)
    "v1/pods": ("Pod", True, ["status"]),
    "v1/services": ("Service", True, []),
    "v1/events": ("Event", True, []),
    "v1/resourcequotas": ("ResourceQuota", True, []),
    "apps/v1/deployments": ("Deployment", True, ["status"]),
    "autoscaling/v2/horizontalpodautoscalers": ("HorizontalPodAutoscaler", True, []),
    "policy/v1/poddisruptionbudgets": ("PodDisruptionBudget", True, []),
    "networking.k8s.io/v1/networkpolicies": ("NetworkPolicy", True, []),
    "monitoring.coreos.com/v1/servicemonitors": ("ServiceMonitor", True, []),
}


# ------------------------------------------------------------------ fixtures


def _adapter_dir(root: Path, name: str, marker: str) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    config = {"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q_proj"]}
    (folder / "adapter_config.json").write_text(json.dumps(config))
    (folder / "adapter_model.safetensors").write_text(marker)  # distinct content per version
    return folder


@pytest.fixture
def admin(platform: Callable[..., Client], tmp_path: Path) -> Client:
    client = platform()
    client.projects.create(P)
    client.projects.create("other")
    for project in (P, "other"):
        client.registry.models.register(
            project, "smol", source="HuggingFaceTB/SmolLM2-135M-Instruct", license="apache-2.0"
        )
    for version in (1, 2):
        folder = _adapter_dir(tmp_path / f"tone-{version}", "tone", f"v{version}")
        client.registry.adapters.register(P, "tone", base_model="smol", path=folder)
    return client


@contextmanager
def pod(admin: Client, tmp_path: Path) -> Iterator[tuple[FakeOpenAIServer, int]]:
    """A revision's pod: the fake vLLM and the adapter agent, reading the platform's store."""
    with FakeOpenAIServer(base_model="smol", check_lora_paths=True) as vllm:
        app = agent_app(
            artifacts_url=admin.settings.resolved_artifact_root,
            adapters_dir=tmp_path / "adapters",
            vllm_url=vllm.url.removesuffix("/v1"),
        )
        with running_server(app) as url:
            yield vllm, int(url.rsplit(":", 1)[1].split("/")[0])


@asynccontextmanager
async def cluster() -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    """kmock's Kubernetes emulator on 127.0.0.1, with the project's bound namespace."""
    async with kmock.KubernetesEmulator() as k8s, kmock.Server(k8s) as server:
        for path, (kind, namespaced, subresources) in RESOURCES.items():
            k8s.resources[path] = kmock.ResourceInfo(
                kind=kind,
                namespaced=namespaced,
                subresources=subresources,
                verbs=["list", "watch", "get", "create", "patch", "delete"],
            )
        # kmock cannot store cluster-scoped namespaces (its path parser takes "namespaces"
        # for the namespace marker): the bound namespace is a fixed answer
        namespace = {"apiVersion": "v1", "kind": "Namespace"}
        labels = {f"{GROUP}/project": P}
        k8s[f"get /api/v1/namespaces/{NS}"] << {
            **namespace,
            "metadata": {"name": NS, "labels": labels},
        }
        async with httpx.AsyncClient(base_url=str(server.url).rstrip("/")) as http:
            yield k8s, http


def resource(spec: dict[str, Any], *, generation: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "GenAIDeployment",
        "metadata": {"name": "bot", "namespace": NS, "uid": "uid-1", "generation": generation},
        "spec": spec,
    }


def spec(*, adapter: str = "tone@1", weights: tuple[float, ...] = (1.0,)) -> dict[str, Any]:
    names = ["stable", "canary"][: len(weights)]
    return {
        "project": P,
        "model": "smol",
        "adapters": [{"ref": adapter, "name": "tone"}],
        "traffic": {
            "revisions": [{"name": n, "weight": w} for n, w in zip(names, weights, strict=True)]
        },
    }


async def run_pods(http: httpx.AsyncClient, revision: str, port_ip: str = "127.0.0.1") -> None:
    """What the Deployment controller and kubelet do: the revision's Deployment is rolled
    out and one pod of it runs and is ready."""
    path = f"/apis/apps/v1/namespaces/{NS}/deployments/bot-{revision}"
    deployment = (await http.get(path)).json()
    status = {"replicas": 1, "readyReplicas": 1, "updatedReplicas": 1, "observedGeneration": 1}
    (
        await http.patch(path, json={"metadata": {"generation": 1}, "status": status})
    ).raise_for_status()
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"bot-{revision}-0", "namespace": NS, "labels": labels},
        "status": {
            "phase": "Running",
            "podIP": port_ip,
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }
    (await http.post(f"/api/v1/namespaces/{NS}/pods", json=body)).raise_for_status()


def kinds(k8s: Any) -> list[tuple[str, str]]:
    return sorted(
        (obj["kind"], obj["metadata"]["name"]) for obj in k8s.objects.values() if not obj.deleted
    )


def snapshot(k8s: Any) -> dict[Any, str]:
    return {k: json.dumps(v.raw, sort_keys=True) for k, v in k8s.objects.items() if not v.deleted}


def conditions(status: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in status["conditions"]}


@asynccontextmanager
async def operator(
    admin: Client, http: httpx.AsyncClient, agent_port: int
) -> AsyncIterator[Operator]:
    kube = KubeApi(str(http.base_url))
    config = OperatorConfig(artifacts_url="s3://genai/artifacts", agent_port=agent_port)
    op = Operator(kube, admin, config, clock=lambda: NOW)
    try:
        yield op
    finally:
        await op.aclose()
        await kube.aclose()


# ------------------------------------------------------------------ one step at a time


def test_reconcile_steps_load_adapters_without_restarts(admin: Client, tmp_path: Path) -> None:
    with pod(admin, tmp_path) as (vllm, port):
        asyncio.run(_steps(admin, vllm, port))


async def _steps(admin: Client, vllm: FakeOpenAIServer, port: int) -> None:
    async with cluster() as (k8s, http), operator(admin, http, port) as op:
        # 1. nothing runs yet: the objects are applied, nothing is Ready, no gateway revision
        status = await op.reconcile(resource(spec()))
        assert conditions(status) == {"Ready": "False", "Progressing": "True", "Degraded": "False"}
        assert kinds(k8s) == [
            ("Deployment", "bot-stable"),
            ("NetworkPolicy", "bot"),
            ("PodDisruptionBudget", "bot-stable"),
            ("Service", "bot-stable"),
            ("ServiceMonitor", "bot-stable"),
        ]
        assert admin.registry.deployments.list(P) == []

        # 2. the pod runs: the operator loads the adapter through its agent, and the next
        # step finds it served: Ready, and the gateway routes to the revision
        await run_pods(http, "stable")
        status = await op.reconcile(resource(spec()))
        assert vllm.adapters.keys() == {"tone"} and status["warnings"] == []
        status = await op.reconcile(resource(spec()))
        assert conditions(status)["Ready"] == "True", status
        gateway = admin.registry.deployments.get(P, "bot")
        assert (gateway.version, gateway.model, gateway.adapter) == (
            1,
            "model:smol@1",
            "adapter:tone@1",
        )
        target = parse_spec(gateway.spec).targets[0]
        assert target.url == f"http://bot-stable.{NS}.svc.cluster.local:8000/v1"
        assert (target.model, parse_spec(gateway.spec).adapters) == ("smol", ["tone"])
        template = k8s.objects[_key("apps/v1/deployments", "bot-stable")]["spec"]["template"]

        # 3. the same spec again changes nothing: no new gateway revision
        await op.reconcile(resource(spec()))
        assert admin.registry.deployments.get(P, "bot").version == 1

        # 4. a new version of the adapter under the same name: swapped on the running pod;
        # the pod template is untouched (no restart) and the fake vLLM never restarted
        first_path = vllm.adapters["tone"]
        for _ in range(2):
            status = await op.reconcile(resource(spec(adapter="tone@2"), generation=2))
        assert vllm.adapters["tone"] != first_path and conditions(status)["Ready"] == "True"
        assert (
            k8s.objects[_key("apps/v1/deployments", "bot-stable")]["spec"]["template"] == template
        )
        assert vllm.starts == 1
        assert admin.registry.deployments.get(P, "bot").adapter == "adapter:tone@2"

        # 5. no adapters any more: unloaded from the pod
        bare = {**spec(), "adapters": []}
        await op.reconcile(resource(bare, generation=3))
        assert vllm.adapters == {} and vllm.starts == 1

        # 6. deleting the resource removes its objects
        await op.finalize(resource(bare))
        assert kinds(k8s) == [("Pod", "bot-stable-0")]  # the garbage collector's, in a cluster


def _key(resource_path: str, name: str) -> Any:
    return (kmock.resource(resource_path), NS, name)


def test_canary_weights_move_without_touching_pods(admin: Client, tmp_path: Path) -> None:
    with pod(admin, tmp_path) as (vllm, port):
        asyncio.run(_canary(admin, vllm, port))


async def _canary(admin: Client, vllm: FakeOpenAIServer, port: int) -> None:
    async with cluster() as (k8s, http), operator(admin, http, port) as op:
        await op.reconcile(resource(spec(weights=(90, 10))))
        for revision in ("stable", "canary"):  # both pods share the fake vLLM here
            await run_pods(http, revision)
        for _ in range(2):
            status = await op.reconcile(resource(spec(weights=(90, 10))))
        assert conditions(status) == {"Ready": "True", "Progressing": "False", "Degraded": "False"}
        gateway = parse_spec(admin.registry.deployments.get(P, "bot").spec)
        assert [(t.name, t.weight) for t in gateway.targets] == [("stable", 90), ("canary", 10)]
        before = snapshot(k8s)

        status = await op.reconcile(resource(spec(weights=(50, 50)), generation=2))
        newest = admin.registry.deployments.get(P, "bot")
        assert newest.version == 2
        assert [(t.name, t.weight) for t in parse_spec(newest.spec).targets] == [
            ("stable", 50),
            ("canary", 50),
        ]
        after = snapshot(k8s)
        changed = {k for k in after if before.get(k) != after[k]}
        assert changed == set(), "a weight change must not touch any object (pods included)"
        assert vllm.adapters.keys() == {"tone"} and vllm.starts == 1

        # the canary goes: its objects are pruned, the gateway routes to stable only
        status = await op.reconcile(resource(spec(weights=(100,)), generation=3))
        assert ("Deployment", "bot-canary") not in kinds(k8s)
        assert [
            t.name for t in parse_spec(admin.registry.deployments.get(P, "bot").spec).targets
        ] == ["stable"]


# ------------------------------------------------------------------ refusals


@pytest.mark.parametrize(
    ("change", "reason", "words"),
    [
        ({"project": "other"}, "ValidationError", "is not bound to project 'other'"),
        ({"model": "ghost"}, "NotFoundError", "model 'ghost'"),
        ({"adapters": [{"ref": "tone@9"}]}, "NotFoundError", "adapter 'tone@9'"),
        ({"lora": {"maxLoraRank": 512, "maxLoras": 0}}, "ValidationError", "lora.maxLoras"),
        ({"resources": {"gpus": 4}, "autoscaling": {"maxReplicas": 3}}, "QuotaExceeded", "12 GPUs"),
        ({"engine": {"image": "evil.example/miner:1"}}, "ValidationError", "not one this operator"),
    ],
)
def test_refused_specs_are_a_status_and_create_nothing(
    admin: Client, change: dict[str, Any], reason: str, words: str
) -> None:
    admin.quotas.set(P, gpus=8)

    async def go() -> None:
        async with cluster() as (k8s, http), operator(admin, http, 1) as op:
            status = await op.reconcile(resource({**spec(), **change}))
            assert conditions(status) == {
                "Ready": "False",
                "Progressing": "False",
                "Degraded": "True",
            }
            ready = status["conditions"][0]
            assert ready["reason"] == reason and words in ready["message"], ready
            assert kinds(k8s) == []

    asyncio.run(go())


def test_another_projects_model_is_not_found_like_a_missing_one(admin: Client) -> None:
    """Project B's "smol" exists, project A asks for "smol@2" (absent everywhere) and for
    B's by another name: both answers have the same shape, naming nothing of B."""
    admin.registry.models.register(
        "other", "secret-model", source="org/secret", license="apache-2.0"
    )

    async def go() -> list[str]:
        async with cluster() as (_, http), operator(admin, http, 1) as op:
            found = []
            for model in ("secret-model", "never-registered"):
                status = await op.reconcile(resource({**spec(), "model": model, "adapters": []}))
                found.append(status["conditions"][0]["message"].replace(model, "X"))
            return found

    foreign, missing = asyncio.run(go())
    assert foreign == missing and "other" not in foreign


# ------------------------------------------------------------------ kopf's handlers


def test_kopf_handlers_create_update_delete(admin: Client) -> None:
    asyncio.run(_kopf(admin))


async def _poll(check: Callable[[], Any], what: str, tries: int = 400) -> Any:
    """Wait for the operator (another task) to act: bounded, the bound is not the test."""
    for _ in range(tries):
        found = await check()
        if found:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"the operator never {what}")


async def _kopf(admin: Client) -> None:
    import kopf

    async with cluster() as (k8s, http), operator(admin, http, 1) as op:
        stop, ready = asyncio.Event(), asyncio.Event()
        login = kopf.ConnectionInfo(server=str(http.base_url).rstrip("/"), insecure=True)
        task = asyncio.create_task(
            run_operator(
                op,
                namespaces=[NS],
                resync_s=3600,
                login=login,
                scan=False,
                stop_flag=stop,
                ready_flag=ready,
            )
        )
        try:
            await asyncio.wait_for(ready.wait(), 60)
            body = resource(spec())
            body["metadata"]["resourceVersion"] = "1"  # kmock keeps what it is given
            (await http.post(CRS, json=body)).raise_for_status()

            async def status() -> dict[str, Any] | None:
                found = (await http.get(f"{CRS}/bot")).json()
                return (
                    found.get("status") if (found.get("status") or {}).get("conditions") else None
                )

            first = await _poll(status, "wrote a status after create")
            assert conditions(first)["Ready"] == "False"
            assert ("Deployment", "bot-stable") in kinds(k8s)
            found = (await http.get(f"{CRS}/bot")).json()
            assert found["metadata"].get("finalizers"), "kopf guards deletion with a finalizer"

            # an update of the spec: a canary revision appears
            change = {"spec": spec(weights=(90, 10)), "metadata": {"generation": 2}}
            (await http.patch(f"{CRS}/bot", json=change)).raise_for_status()

            async def canary() -> bool:
                return ("Deployment", "bot-canary") in kinds(k8s)

            await _poll(canary, "rendered the canary after an update")

            # delete: the handler removes the objects, then kopf drops its finalizer
            (await http.delete(f"{CRS}/bot")).raise_for_status()

            async def gone() -> bool:
                return (await http.get(f"{CRS}/bot")).status_code == 404 and not any(
                    kind == "Deployment" for kind, _ in kinds(k8s)
                )

            await _poll(gone, "finished the deletion")
        finally:
            stop.set()
            await asyncio.wait_for(task, 60)


# ------------------------------------------------------------------ credentials


def test_a_kubeconfig_gives_the_server_and_the_token(tmp_path: Path) -> None:
    async def go() -> None:
        async with cluster() as (k8s, http):
            config = {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": str(http.base_url).rstrip("/")}}],
                "users": [{"name": "u", "user": {"token": "secret-token"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
            path = tmp_path / "kubeconfig"
            path.write_text(json.dumps(config), encoding="utf-8")
            kube = KubeApi.from_config(kubeconfig=str(path))
            try:
                found = await kube.get("v1", "Namespace", "", NS)
            finally:
                await kube.aclose()
            assert found is not None and found["metadata"]["name"] == NS
            assert k8s[len(k8s) - 1].headers["Authorization"] == "Bearer secret-token"

    asyncio.run(go())


def test_no_cluster_is_a_one_line_usage_error(tmp_path: Path) -> None:
    from genai.errors import ConfigError

    with pytest.raises(ConfigError, match="pass --kubeconfig"):
        KubeApi.from_config(kubeconfig=str(tmp_path / "absent"))


def test_the_gpu_quota_spans_the_projects_deployments(admin: Client) -> None:
    """Two deployments of the project at 4 GPUs each fit a quota of 8; a third does not,
    and its status says how much the others hold."""
    admin.quotas.set(P, gpus=8)
    four = {**spec(), "resources": {"gpus": 1}, "autoscaling": {"maxReplicas": 4}}

    async def go() -> None:
        async with cluster() as (_, http), operator(admin, http, 1) as op:
            for name in ("one", "two", "three"):
                body = resource(four)
                body["metadata"]["name"] = name
                status = await op.reconcile(body)
                ready = status["conditions"][0]
                if name != "three":
                    assert ready["reason"] == "NoRevisionReady", ready
                    (await http.post(CRS, json=body)).raise_for_status()
                else:
                    assert ready["reason"] == "QuotaExceeded"
                    assert "its other deployments 8" in ready["message"]

    asyncio.run(go())
