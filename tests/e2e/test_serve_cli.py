"""`genai serve` as users run it: a real process serving a tiny real model and its LoRA
adapters over OpenAI's API on 127.0.0.1, driven by the official openai client."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from _servers import free_port, wait_for_health
from openai.types.chat import ChatCompletionMessageParam

GENAI = shutil.which("genai", path=str(Path(sys.executable).parent)) or "genai"
BASE = "tiny-llama"
CHAT: list[ChatCompletionMessageParam] = [{"role": "user", "content": "How do I open an account?"}]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model with adapters ``a`` and ``b``, built once for all xdist workers."""
    from filelock import FileLock

    from genai.testing import tiny_adapter, tiny_model

    base = tmp_path_factory.getbasetemp()
    root = (base.parent if base.name.startswith("popen-gw") else base) / "genai-serve-cli"
    root.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root) + ".lock"):
        if not (root / ".built").is_file():
            model = tiny_model(root / "model")
            tiny_adapter(model, root / "a", seed=11)
            tiny_adapter(model, root / "b", seed=12)
            (root / ".built").write_text("ok")
    return root


def environment(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENAI_")}
    return env | {"GENAI_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}


class Served:
    """A running `genai serve`; its output goes to files (a full pipe would block it)."""

    def __init__(self, url: str, process: subprocess.Popen[str], logs: Path) -> None:
        self.url, self.process, self.logs = url, process, logs

    def output(self) -> tuple[str, str]:
        return (self.logs / "out.txt").read_text(), (self.logs / "err.txt").read_text()


@pytest.fixture
def server(tiny: Path, tmp_path: Path) -> Iterator[Served]:
    port = free_port()
    with (tmp_path / "out.txt").open("w") as out, (tmp_path / "err.txt").open("w") as err:
        process = subprocess.Popen(
            [
                GENAI,
                "serve",
                "--model",
                str(tiny / "model"),
                "--adapter",
                f"a={tiny / 'a'}",
                "--port",
                str(port),
                "--dtype",
                "float32",
                "--max-wait-ms",
                "2",
            ],
            env=environment(tmp_path),
            stdout=out,
            stderr=err,
            text=True,
        )
    served = Served(f"http://127.0.0.1:{port}", process, tmp_path)
    url = served.url
    try:
        wait_for_health(url + "/health", process, timeout=90, output=lambda: str(served.output()))
        yield served
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def test_serve_chats_streams_and_swaps_adapters(server: Served, tiny: Path) -> None:
    url, process = server.url, server.process
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=30)
    assert [m.id for m in client.models.list().data] == [BASE, "a"]

    def chat(model: str) -> str:
        reply = client.chat.completions.create(
            model=model, messages=CHAT, max_tokens=12, temperature=0
        )
        assert reply.choices[0].finish_reason == "length"
        assert reply.usage is not None and reply.usage.completion_tokens == 12
        return str(reply.choices[0].message.content)

    base, tuned = chat(BASE), chat("a")
    assert base != tuned
    stream = client.chat.completions.create(
        model="a", messages=CHAT, max_tokens=12, temperature=0, stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == tuned

    loaded = httpx.post(
        url + "/v1/load_lora_adapter",
        timeout=30,
        json={"lora_name": "b", "lora_path": str(tiny / "b")},
    )
    assert loaded.status_code == 200 and "'b' added" in loaded.text
    assert chat("b") not in (base, tuned)
    gone = httpx.post(url + "/v1/unload_lora_adapter", json={"lora_name": "b"}, timeout=30)
    assert gone.status_code == 200 and "'b' removed" in gone.text
    with pytest.raises(openai.NotFoundError):
        chat("b")
    assert [m.id for m in client.models.list().data] == [BASE, "a"]
    assert chat(BASE) == base
    assert "genai_serve_requests_total" in httpx.get(url + "/metrics").text

    process.terminate()  # SIGTERM: a graceful stop
    process.wait(timeout=30)
    out, err = server.output()
    assert process.returncode in (0, -signal.SIGTERM), err
    assert f"serving transformers on {url}/v1" in out
    assert "Traceback" not in err
    with pytest.raises(httpx.TransportError):
        httpx.get(url + "/health", timeout=2)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--adapter", "nonsense"), "--adapter 'nonsense': write NAME=DIR or NAME=adapter:REF"),
        (("--adapter", "=dir"), "write NAME=DIR"),
        (("--adapter", "a=x", "--adapter", "a=y"), "--adapter a is given twice"),
        (("--backend", "nope"), "unknown backend 'nope'"),
    ],
)
def test_bad_arguments_exit_with_one_line(
    tiny: Path, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    result = subprocess.run(
        [GENAI, "serve", "--model", str(tiny / "model"), "--port", str(free_port()), *args],
        env=environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_model_directory_exits_with_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [GENAI, "serve", "--model", str(tmp_path / "nowhere"), "--port", str(free_port())],
        env=environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "is not a Hugging Face model directory" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
