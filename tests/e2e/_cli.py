"""The `genai` command as users run it (a real process), for the e2e test modules:
``from _cli import Cli, GENAI``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

GENAI = shutil.which("genai", path=str(Path(sys.executable).parent)) or "genai"


class Cli:
    """Runs ``genai`` with its own home and database, as user ``admin``."""

    def __init__(self, home: Path, db_url: str) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("GENAI_")}
        self.env |= {"GENAI_HOME": str(home), "GENAI_DATABASE_URL": db_url, "GENAI_USER": "admin"}

    def __call__(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [GENAI, *args], env=self.env, capture_output=True, text=True, timeout=120
        )
        if ok:
            assert result.returncode == 0, f"genai {' '.join(args)} failed:\n{result.stderr}"
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json").stdout)

    def fails(self, *args: str) -> str:
        """The one-line error of a command that must fail (exit status 1, no traceback)."""
        result = self(*args, ok=False)
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        return lines[0]
