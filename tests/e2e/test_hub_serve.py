"""`genai hub serve` as users run it: a real process on 127.0.0.1 serving the Hub alone
(sign-in, pages, a chat through the gateway's code in process) and nothing of the API; and
`genai gateway`'s start-up line naming the Hub's URL."""

from __future__ import annotations

import contextlib
import json
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _cli import GENAI, Cli
from _servers import free_port, wait_for_health

import genai
from genai.settings import Settings

pytestmark = pytest.mark.sqlite_only  # the Hub runs no SQL of its own

REPLY = "Hello from the standalone Hub's fake model."


@pytest.fixture
def cli(tmp_path: Path, db_url: str) -> Cli:
    """Project shop (a fake-model deployment ``chat``) made by the API; the CLI's env."""
    settings = Settings(home=tmp_path / "home", database_url=db_url)
    genai.init(settings, admin="admin")
    with genai.connect(settings, user="admin") as admin:
        admin.projects.create("shop")
        fake = {"targets": [{"name": "m", "backend": "fake", "options": {"default": REPLY}}]}
        admin.registry.deployments.create("shop", "chat", spec=fake)
    return Cli(tmp_path / "home", db_url)


def owner_key(cli: Cli) -> str:
    return str(cli.json("key", "create", "--project", "shop", "--role", "owner")["secret"])


@contextlib.contextmanager
def running(cli: Cli, logs: Path, *args: str, ready: str) -> Iterator[tuple[str, Path]]:
    """``genai ARGS --port P`` until the block ends (Ctrl-C): its base URL and its stdout
    file, once ``ready`` (a path) answers 200."""
    port = free_port()
    out = logs / "out.txt"
    with out.open("w") as stdout, (logs / "err.txt").open("w") as stderr:
        process = subprocess.Popen(
            [GENAI, *args, "--port", str(port)],
            env=cli.env | {"PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"},
            stdout=stdout,
            stderr=stderr,
            text=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(
            url + ready,
            process,
            timeout=120,
            output=lambda: out.read_text() + (logs / "err.txt").read_text(),
        )
        yield url, out
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()


def test_genai_hub_serve_serves_the_hub_and_nothing_of_the_api(cli: Cli, tmp_path: Path) -> None:
    key = owner_key(cli)
    with running(cli, tmp_path, "hub", "serve", ready="/hub/signin") as (url, out):
        assert f"Hub on {url}/hub" in out.read_text()
        with httpx.Client(base_url=url, timeout=60) as http:
            assert http.get("/").headers["location"] == "/hub/"
            for path in ("/v1/models", "/api/projects", "/metrics", "/docs"):
                assert http.get(path).status_code == 404, path
            answer = http.get("/v1/models", headers={"authorization": f"Bearer {key}"})
            assert answer.status_code == 404  # a key opens no API here either
            form = http.get("/hub/signin")
            token = re.search(r'name="csrf" value="([^"]+)"', form.text)
            assert token, form.text
            signed = http.post("/hub/signin", data={"key": key, "csrf": token.group(1)})
            assert signed.status_code == 303 and signed.headers["location"] == "/hub/p/shop"
            page = http.get("/hub/p/shop/chat/chat")
            assert page.status_code == 200
            csrf = re.search(r'<meta name="csrf-token" content="([^"]+)"', page.text)
            assert csrf, page.text
            # the chat goes through the gateway's own code, in this process
            body = {"messages": [{"role": "user", "content": "hi"}]}
            headers = {"x-csrf-token": csrf.group(1), "accept": "text/event-stream"}
            with http.stream("POST", "/hub/p/shop/chat/chat", json=body, headers=headers) as r:
                assert r.status_code == 200
                lines = [line for line in r.iter_lines() if line.startswith("data: {")]
            chunks = [json.loads(line.removeprefix("data: ")) for line in lines]
            text = "".join(
                c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices")
            )
            assert text == REPLY


def test_genai_gateway_names_the_hubs_url_when_it_starts(cli: Cli, tmp_path: Path) -> None:
    with running(cli, tmp_path, "gateway", ready="/health") as (url, out):
        line = out.read_text().splitlines()[0]
        assert f"gateway on {url}/v1" in line and f"the Hub on {url}/hub" in line, line
