"""The ``lm_eval`` process: which python runs it, its environment, its output streamed.

A non-zero exit is a :class:`genai.errors.BackendError` carrying the tail of its output;
Ctrl-C (or any exception) stops it, with its children.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import os
import re
import signal
import subprocess
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

from eval._tool_python import tool_python
from genai.errors import BackendError
from genai.progress import ProgressBar

__all__ = ["PYTHON_ENV", "environment", "execute", "lm_eval_python"]

PYTHON_ENV = "GENAI_LM_EVAL_PYTHON"
_TAIL = 30
_TQDM = re.compile(r"(?P<what>[^:|]+):\s*\d+%\|[^|]*\|\s*(?P<done>\d+)/(?P<total>\d+)")


def lm_eval_python(python: str | Path | None = None) -> Path:
    """The interpreter that runs lm_eval: ``python``, else ``GENAI_LM_EVAL_PYTHON``, else
    this one when lm-eval is installed here."""
    return tool_python(
        python,
        env_var=PYTHON_ENV,
        module="lm_eval",
        package="lm-eval",
        extra="lm-eval",
        purpose="`genai eval lm-eval`",
        where=f"--python or {PYTHON_ENV}",
    )


def environment(api_key: str, *, online: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENAI_")}
    env.update(OPENAI_API_KEY=api_key, HF_HUB_DISABLE_TELEMETRY="1", TOKENIZERS_PARALLELISM="false")
    if not online:
        env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return env


def execute(
    command: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    progress: bool,
    on_output: Callable[[str], None] | None,
) -> None:
    """Run lm_eval, its output streamed line by line to ``on_output`` and the bar; a
    non-zero exit is a BackendError with the tail of its output."""
    tail: deque[str] = deque(maxlen=_TAIL)
    bar = ProgressBar(enabled=progress, title="lm-eval", total=None, stderr=True)
    try:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C stops it through us, with its children
        )
    except OSError as exc:
        said = f"cannot start lm_eval with {command[0]}: {exc}"
        raise BackendError(said, backend="lm-eval") from exc
    assert isinstance(process.stdout, io.BufferedReader)
    try:
        with bar:
            for line in _lines(process.stdout):
                tail.append(line)
                if on_output is not None:
                    on_output(line)
                _show(bar, line)
        code = process.wait()
    except BaseException:
        _stop(process)
        raise
    if code != 0:
        said = "\n".join(line[:300] for line in tail)
        raise BackendError(
            f"lm_eval exited with status {code}; the end of its output:\n{said}",
            backend="lm-eval",
        )


class _Pipe(Protocol):
    def read1(self, size: int = ..., /) -> bytes: ...


def _lines(stream: _Pipe) -> Iterator[str]:
    """Lines of ``stream`` as they come; a progress bar's ``\\r`` updates are lines too."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    while chunk := stream.read1(8192):
        pending += decoder.decode(chunk)
        *done, pending = re.split(r"[\r\n]", pending)
        yield from (line.rstrip() for line in done if line.strip())
    pending += decoder.decode(b"", final=True)
    if pending.strip():
        yield pending.rstrip()


def _show(bar: ProgressBar, line: str) -> None:
    match = _TQDM.search(line)
    if match is not None:
        what = match["what"].strip()
        bar.update(description=f"lm-eval · {what}", total=int(match["total"]))
        bar.update(completed=int(match["done"]))
    elif " INFO " in line or "WARNING" in line or "ERROR" in line:
        bar.print(f"[dim]{_escape(line[:240])}[/dim]")


def _escape(text: str) -> str:
    return text.replace("[", r"\[")


def _stop(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
