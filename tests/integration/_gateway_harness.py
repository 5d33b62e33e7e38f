"""Run the real gateway app (the same one ``genai gateway`` serves) on a loopback port.

    with run_gateway(settings) as gw:          # settings: an initialised platform
        client = openai.OpenAI(base_url=gw.v1, api_key=key)

or a real ``genai gateway`` process (for what only a process shows: signals, two processes
sharing counters):

    with gateway_process(env, tmp_path / "gateway.log") as (v1, process):
        ...

``new_project(admin, name)`` makes a project with a developer key, as a
:class:`GatewayProject` (the ``project`` fixture of tests/integration/conftest.py is one).

Import it from a test module: ``from _gateway_harness import run_gateway`` (tests/integration
is on sys.path under pytest's rootdir-relative imports) or via the ``gateway_server`` fixture
of tests/integration/conftest.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from _clocks import wait_until
from _servers import free_port, wait_for_health
from sqlalchemy import func, select

from genai.gateway import (
    Circuits,
    Gateway,
    GatewayOptions,
    Stages,
    create_gateway,
    create_gateway_app,
)
from genai.settings import Settings
from genai.store import schema as t

START_TIMEOUT_S = 30.0
GENAI = shutil.which("genai", path=str(Path(sys.executable).parent)) or "genai"


@dataclass
class LiveGateway:
    url: str  # http://127.0.0.1:PORT
    gateway: Gateway
    app: Any

    @property
    def v1(self) -> str:
        return self.url + "/v1"


@contextlib.contextmanager
def run_gateway(
    settings: Settings,
    *,
    stages: Stages | None = None,
    options: GatewayOptions | None = None,
    embedder: Any = None,
    admin: Any = None,
    gateway: Gateway | None = None,
    circuits: Circuits | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    now: Callable[[], datetime] | None = None,
    clock: Callable[[], float] = time.monotonic,
    rng: random.Random | None = None,
) -> Iterator[LiveGateway]:
    """The gateway under uvicorn in a thread; stopped (ledger flushed) on exit. ``sleep``
    is its retry backoff's (a test's ManualClock.sleep records the waits instead), ``now``
    its quota windows' clock (a test's ManualClock.now), ``clock`` its caches' (keys,
    routes, upstream credentials, in-process counters)."""
    import uvicorn

    if embedder is not None:  # the process's one embedder, as `genai gateway` wires it
        stages = stages or Stages()
        if stages.embedder is None:
            stages = dataclasses.replace(stages, embedder=embedder)
    gw = gateway or create_gateway(
        settings,
        stages=stages,
        options=options or GatewayOptions(ledger_interval_s=0.05),
        circuits=circuits,
        sleep=sleep,
        now=now,
        clock=clock,
        rng=rng,
    )
    app = create_gateway_app(gw, settings=settings, embedder=embedder, admin=admin)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started or not thread.is_alive(), START_TIMEOUT_S)
        if not server.started:
            raise RuntimeError("the gateway did not start (see the log above)")
        yield LiveGateway(url=f"http://127.0.0.1:{port}", gateway=gw, app=app)
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()
        assert not thread.is_alive(), "the gateway did not shut down"


@contextlib.contextmanager
def gateway_process(
    env: dict[str, str], log: Path
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A real ``genai gateway`` process (environment ``env``, output in ``log``) on a free
    loopback port: yields its /v1 URL and the process. On exit a process still running
    gets SIGTERM (it writes its ledger rows), then SIGKILL if it has not stopped."""
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [GENAI, "gateway", "--port", str(port), "--no-access-log"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for_health(url + "/health", process, timeout=START_TIMEOUT_S, output=log.read_text)
            yield url + "/v1", process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)


@dataclass
class GatewayProject:
    """A project as a gateway test sees it: the platform admin's client, the project's
    name, id and a developer key; its deployments and the rows the gateway wrote."""

    admin: Any  # genai.Client of the platform admin
    name: str
    key: str
    id: int

    def deploy(self, spec: dict[str, Any], name: str = "chat") -> None:
        self.admin.registry.deployments.create(self.name, name, spec=spec)

    def rows(self, table: Any = t.UsageRecord) -> list[Any]:
        """The project's rows of ``table`` (the usage ledger unless told otherwise)."""
        with self.admin.store.session() as s:
            return list(s.scalars(select(table).where(table.project_id == self.id)))

    def count(self) -> int:
        """How many usage rows the project has."""
        with self.admin.store.session() as s:
            query = select(func.count()).where(t.UsageRecord.project_id == self.id)
            return int(s.scalar(query) or 0)


def new_project(admin: Any, name: str) -> GatewayProject:
    """Create project ``name`` with a developer key (``admin``: a platform admin client)."""
    admin.projects.create(name)
    key = admin.keys.create(name, role="developer").secret
    with admin.store.session() as s:
        project_id = s.scalar(select(t.Project.id).where(t.Project.name == name))
    assert project_id is not None
    return GatewayProject(admin, name, key, int(project_id))
