"""Run the real gateway app (the same one ``genai gateway`` serves) on a loopback port.

    with run_gateway(settings) as gw:          # settings: an initialised platform
        client = openai.OpenAI(base_url=gw.v1, api_key=key)

Import it from a test module: ``from _gateway_harness import run_gateway`` (tests/integration
is on sys.path under pytest's rootdir-relative imports) or via the ``gateway_server`` fixture
of tests/integration/conftest.py.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from genai.gateway import (
    Circuits,
    Gateway,
    GatewayOptions,
    Stages,
    create_gateway,
    create_gateway_app,
)
from genai.settings import Settings

START_TIMEOUT_S = 30.0


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
) -> Iterator[LiveGateway]:
    """The gateway under uvicorn in a thread; stopped (ledger flushed) on exit."""
    import uvicorn

    gw = gateway or create_gateway(
        settings,
        stages=stages,
        options=options or GatewayOptions(ledger_interval_s=0.05),
        circuits=circuits,
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
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not server.started:
            raise RuntimeError("the gateway did not start (see the log above)")
        yield LiveGateway(url=f"http://127.0.0.1:{port}", gateway=gw, app=app)
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()
        assert not thread.is_alive(), "the gateway did not shut down"
