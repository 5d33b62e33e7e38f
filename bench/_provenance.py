"""What every benchmark report records about where it ran: the machine, package versions,
and the exact source measured (a git description, plus a hash of uncommitted source)."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

__all__ = ["ROOT", "machine", "ours_version", "version"]


def machine() -> str:
    """CPUs, memory, OS and Python of this machine, in one line."""
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or platform.machine(),
    )
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{os.cpu_count()} CPUs ({model}), {mem:.0f} GiB RAM, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}"
    )


def version(dist: str) -> str | None:
    """The installed version of a distribution, or None."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def ours_version(*sources: str) -> str:
    """genai-platform's version and git description; when the tree is dirty, a hash of the
    Python files under ``sources`` (folders of the repository) names what was measured."""
    git = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
        check=False,
        capture_output=True,
        text=True,
    )
    described = git.stdout.strip() or "?"
    if described.endswith("-dirty") or described == "?":
        digest = hashlib.sha256()
        files = sorted(p for folder in sources for p in ROOT.glob(f"{folder}/**/*.py"))
        for path in files:
            digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
        described += f", {' + '.join(f'{s}/' for s in sources)} source sha256 "
        described += digest.hexdigest()[:12]
    return f"genai-platform {version('genai-platform') or 'unknown'} (git {described})"
