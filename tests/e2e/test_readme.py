"""The README's examples run as written."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from _servers import free_port, wait_for_health

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
BIN = Path(sys.executable).parent


def _section(title: str) -> str:
    start = README.index(f"## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end > 0 else None]


def _blocks(language: str, text: str = README) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


def _env(home: Path, user: str = "alice") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENAI_")}
    return env | {"GENAI_HOME": str(home), "GENAI_USER": user, "PATH": f"{BIN}:{env['PATH']}"}


def _run_python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        env=_env(cwd),
        capture_output=True,
        text=True,
        timeout=180,
        cwd=cwd,
    )


def test_readme_shows_the_two_commands() -> None:
    setup = _blocks("bash")[0]
    assert "make run" in setup and "make test" in setup


def test_python_example_runs(tmp_path: Path) -> None:
    (code,) = _blocks("python", _section("The Python API"))
    result = _run_python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "key, shown once: gk_" in result.stdout
    assert "'adapter:faq-lora@1', 'deployment:chat@1'" in result.stdout
    assert "requests=1" in result.stdout and "prompt_tokens=42" in result.stdout


def test_cli_example_runs(tmp_path: Path) -> None:
    cli_block = next(b for b in _blocks("bash") if b.startswith("genai init"))
    for line in cli_block.strip().splitlines():
        args = shlex.split(line)
        assert args[0] == "genai"
        result = subprocess.run(
            [str(BIN / "genai"), *args[1:]],
            env=_env(tmp_path, "admin"),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, f"{line}\n{result.stderr}"


@contextlib.contextmanager
def _serving(setup: str, tmp_path: Path) -> Iterator[str]:
    """Run a section's set-up block (a ``python -c`` that writes a model, then a ``genai
    serve ... &`` line) on a free port; yields the port."""
    make, serve_line = setup.strip().splitlines()
    assert make.startswith("python -c ") and serve_line.endswith("&")
    built = _run_python(shlex.split(make)[2], tmp_path)
    assert built.returncode == 0, built.stderr
    with _background(serve_line, "8000", tmp_path) as port:
        yield port


@contextlib.contextmanager
def _background(
    line: str, readme_port: str, tmp_path: Path, timeout: float = 60, user: str = "alice"
) -> Iterator[str]:
    """Start a README's ``genai ... &`` server line on a free port in place of
    ``readme_port``; yields the port once ``/health`` answers, stops the server after."""
    port = str(free_port())
    args = shlex.split(line.split("#", 1)[0].rstrip(" &").replace(readme_port, port))
    server = subprocess.Popen(
        [str(BIN / args[0]), *args[1:]],
        cwd=tmp_path,
        env=_env(tmp_path, user),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )

    def log() -> str:  # once it has exited (reading a live pipe would wait for its end)
        exited = server.poll() is not None
        return server.stderr.read() if server.stderr and exited else ""

    try:
        wait_for_health(f"http://127.0.0.1:{port}/health", server, timeout=timeout, output=log)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_serving_example_runs(tmp_path: Path) -> None:
    section = _section("Serving models")
    setup, calls = _blocks("bash", section)
    (client_code,) = _blocks("python", section)
    with _serving(setup, tmp_path) as port:
        result = _run_python(client_code.replace("8000", port), tmp_path)
        assert result.returncode == 0, result.stderr
        assert "['tiny-llama', 'support']" in result.stdout
        assert "completion_tokens=16" in result.stdout
        shell = subprocess.run(
            ["bash", "-c", calls.replace("8000", port)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert shell.returncode == 0, shell.stderr
        assert "Success: LoRA adapter 'faq' added successfully." in shell.stdout
        assert "Success: LoRA adapter 'faq' removed successfully." in shell.stdout
        assert "genai_serve_batch_rows_count" in shell.stdout


def test_knowledge_base_examples_run(tmp_path: Path) -> None:
    section = _section("Knowledge bases and knowledge bots")
    cli_block = _blocks("bash", section)[0]
    setup = subprocess.run(
        [str(BIN / "genai"), "init"], env=_env(tmp_path / "home"), capture_output=True, text=True
    )
    assert setup.returncode == 0, setup.stderr
    shell = subprocess.run(
        ["bash", "-e", "-c", cli_block],
        cwd=tmp_path,
        env=_env(tmp_path / "home"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert shell.returncode == 0, shell.stderr
    assert "1 added" in shell.stdout and "1 unchanged; 0 chunks written" in shell.stdout
    assert "Refunds reach your card within five business days [1]." in shell.stdout
    assert "[1] " in shell.stdout and "billing.md Refunds" in shell.stdout

    python_block = _blocks("python", section)[0]
    result = _run_python(python_block, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "The desk opens at 9 am, Monday to Friday [1]." in result.stdout
    assert "desk.md Support desk']" in result.stdout


def test_security_example_runs(tmp_path: Path) -> None:
    section = _section("Security")
    (spec,) = _blocks("yaml", section)
    (commands,) = _blocks("bash", section)
    (tmp_path / "vendor.yaml").write_text(spec, encoding="utf-8")
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", commands],
        env=_env(tmp_path, "admin"),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "vendor-key" in result.stdout  # listed by name
    assert "sk-example-not-a-real-key" not in result.stdout + result.stderr  # never shown
    listed = subprocess.run(
        [str(BIN / "genai"), "secret", "list", "--project", "vendor-bot", "--json"],
        env=_env(tmp_path, "admin"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0 and "vendor-key" not in listed.stdout  # deleted at the end


def test_testing_kit_example_passes_under_pytest(tmp_path: Path) -> None:
    """The layout section's user test file: a user's embedder checked by subclassing the
    shipped suite, and a user's function tested against the scripted FakeLLM."""
    (code,) = _blocks("python", _section("The testing kit"))
    (tmp_path / "test_mine.py").write_text(code, encoding="utf-8")
    result = subprocess.run(
        # -p no:kmock: the operator tests' kmock (in this environment, not a user's) ships a
        # pytest plugin that needs pytest-asyncio
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:kmock",
            "test_mine.py",
        ],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # the suite's tests ran against the user's class, and the user's own test
    assert re.search(r"\b6 passed\b", result.stdout), result.stdout


def test_plugin_example_runs(tmp_path: Path) -> None:
    plugins = _blocks("python", _section("Layout"))[0]
    result = _run_python(plugins, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "'fake', 'openai', 'scripted', 'transformers'" in result.stdout


def test_cache_example_runs(tmp_path: Path) -> None:
    """The semantic cache's example: a project turns it on for one deployment, and the
    `x-genai-cache-control` header skips the lookup or the store of one request."""
    section = _section("DLP and the semantic cache")
    (spec,) = _blocks("yaml", section)
    setup = next(b for b in _blocks("bash", section) if "genai cache enable" in b)
    (client_code,) = _blocks("python", section)
    (tmp_path / "shop-chat.yaml").write_text(spec, encoding="utf-8")
    *commands, gateway_line = setup.strip().splitlines()
    assert gateway_line.startswith("genai gateway ") and gateway_line.endswith("&")
    printed = ""
    for line in commands:
        args = shlex.split(line.split("#", 1)[0])
        done = subprocess.run(
            [str(BIN / "genai"), *args[1:]],
            env=_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
        assert done.returncode == 0, f"{line}\n{done.stderr}"
        printed += done.stdout
    (key,) = re.findall(r"gk_\w{10}_[\w-]{43}", printed)
    with _background(gateway_line, "4000", tmp_path, timeout=120) as port:
        code = client_code.replace("4000", port).replace("gk_...", key)
        result = _run_python(code, tmp_path)
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["miss", "miss", "hit", "miss"]


def test_structured_output_example_runs(tmp_path: Path) -> None:
    section = _section("Structured output, tools and log-probabilities")
    (setup,) = _blocks("bash", section)
    (client_code,) = _blocks("python", section)
    with _serving(setup, tmp_path) as port:
        result = _run_python(client_code.replace("8000", port), tmp_path)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == ["City", "tool_calls get_weather", "None"]


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_finetuning_example_trains_serves_and_reaches_the_adapter(tmp_path: Path) -> None:
    """SmolLM2 imported from its wheel, fine-tuned on the docs' capitals, scored on the
    held-out split before and after, served with `genai serve`, reached through the gateway."""
    section = _section("Fine-tuning")
    commands, servers = _blocks("bash", section)
    (client_code,) = _blocks("python", section)
    script = commands.replace("examples/finetune/", f"{ROOT}/examples/finetune/")
    shell = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        env=_env(tmp_path, "admin"),
        capture_output=True,
        text=True,
        timeout=1000,
    )
    assert shell.returncode == 0, shell.stdout[-2000:] + shell.stderr[-3000:]
    assert "registered adapter:capitals@1" in shell.stdout
    serve_line, gateway_line = servers.strip().splitlines()
    with (
        _background(serve_line, "8000", tmp_path, timeout=180, user="admin") as serve_port,
        _background(gateway_line, "4000", tmp_path, timeout=120, user="admin") as gateway_port,
    ):
        code = client_code.replace("8000", serve_port).replace("4000", gateway_port)
        result = subprocess.run(
            [sys.executable, "-c", code],
            env=_env(tmp_path, "admin"),
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
        )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "held-out exact answers: base 0%, fine-tuned 57%",
        '{"country": "Japan", "capital": "Tokyo"}',
    ]


def test_the_loop_at_the_top_is_the_one_the_finetune_notebook_runs() -> None:
    """The ten lines before the set-up are the notebook's calls (which its test executes)."""
    import json

    (loop,) = _blocks("python", README[: README.index("## Set-up")])
    assert len(loop.strip().splitlines()) == 10
    notebook = json.loads(
        (ROOT / "examples" / "notebooks" / "finetune_eval_promote.ipynb").read_text("utf-8")
    )
    code = "\n".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code")
    calls = set(re.findall(r"\b([a-z_]+(?:\.[a-z_]+)+)\(", loop))
    assert len(calls) >= 8, calls
    assert {c for c in calls if f"{c}(" not in code} == set()
    for literal in re.findall(r'"[^"]*"', loop):
        assert literal in code, literal
