"""Which python runs a third-party tool whose pins clash with the project's (ragas,
lm-evaluation-harness): the one named, else the one an environment variable names, else
this one when the tool is installed here."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from genai.errors import MissingDependencyError, UsageError

__all__ = ["tool_python"]


def tool_python(
    python: str | Path | None,
    *,
    env_var: str,
    module: str,
    package: str,
    extra: str,
    purpose: str,
    where: str,
) -> Path:
    """The interpreter for ``module``; ``where`` says how a user names one (e.g.
    "--python or GENAI_LM_EVAL_PYTHON"). A missing one is an error naming both routes."""
    chosen = python or os.environ.get(env_var)
    if chosen:
        path = Path(chosen).expanduser()
        if not path.is_file():
            raise UsageError(
                f"the {package} python {str(path)!r} does not exist: name the python of an "
                f"environment with {package} installed ({where})"
            )
        return path
    if importlib.util.find_spec(module) is not None:
        return Path(sys.executable)
    error = MissingDependencyError(package, extra=extra, purpose=purpose)
    error.message += (
        f", or install {package} in a virtual environment of its own (its pins clash with "
        f"the project's) and name its python with {where}"
    )
    error.args = (error.message,)
    raise error
