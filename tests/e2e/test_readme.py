"""The README's examples run as written."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
BIN = Path(sys.executable).parent


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def _env(home: Path, user: str = "alice") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENAI_")}
    return env | {"GENAI_HOME": str(home), "GENAI_USER": user, "PATH": f"{BIN}:{env['PATH']}"}


def test_readme_shows_the_two_commands() -> None:
    setup = _blocks("bash")[0]
    assert "make run" in setup and "make test" in setup


def test_python_example_runs(tmp_path: Path) -> None:
    (code,) = _blocks("python")
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
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
