"""Which in-process backends a deployment may name, and where their files may come from.

A deployment's target (or a knowledge bot's LLM) may run a backend inside the gateway
process (``backend: transformers``, ``options: {model: DIR}``). Project maintainers write
deployments; the gateway's host is the operator's. Without a policy a maintainer could make
the gateway load any directory it can read (and learn from the errors which paths exist),
or pull weights from a hub. So the operator says:

- ``GENAI_INPROCESS_BACKENDS``: the backends deployments may name (default ``extractive``
  and ``fake``, which load no weights of their own); and
- ``GENAI_MODEL_ROOTS``: the directories their files (``model``, ``adapters``, an
  extractive backend's ``embedding_model``) must lie in, symlinks resolved. The bundled
  embedding model is always allowed.

The refusal reads the same whether or not a path exists. ``genai serve`` and the Python
API, which the operator runs directly, are not deployments and are not limited by it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genai.errors import Forbidden
from genai.settings import Settings

__all__ = ["DEFAULT_INPROCESS_BACKENDS", "InProcessPolicy", "inprocess_policy"]

DEFAULT_INPROCESS_BACKENDS = ("extractive", "fake")

#: The options of each built-in backend that name files (a mapping's values, for adapters).
_PATH_OPTIONS = {
    "transformers": ("model", "adapters"),
    "vllm": ("model", "adapters"),
    "extractive": ("embedding_model",),
}
_BUNDLED = ("all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2")


@dataclass(frozen=True)
class InProcessPolicy:
    """The operator's rule for in-process backends named by deployments."""

    backends: frozenset[str] = frozenset(DEFAULT_INPROCESS_BACKENDS)
    model_roots: tuple[Path, ...] = ()

    @classmethod
    def of(cls, backends: Iterable[str], model_roots: Iterable[str | Path]) -> InProcessPolicy:
        roots = tuple(Path(os.path.realpath(Path(r).expanduser())) for r in model_roots)
        return cls(frozenset(b.strip() for b in backends if b.strip()), roots)

    def check(self, backend: str, options: Mapping[str, Any], *, where: str) -> None:
        """Refuse (:class:`~genai.errors.Forbidden`) a backend or a file the operator does
        not allow; ``where`` names the target in the message."""
        if backend not in self.backends:
            raise Forbidden(
                f"{where} runs the backend {backend!r} inside the gateway, which this gateway "
                f"does not allow (allowed: {', '.join(sorted(self.backends)) or 'none'}). "
                "Point the target at a model server (`url`), or ask the operator to add it "
                "to GENAI_INPROCESS_BACKENDS"
            )
        for option, value in _paths(backend, options):
            if not self._inside(value):
                raise Forbidden(
                    f"{where}: options.{option} names files outside the directories this "
                    "gateway loads models from (GENAI_MODEL_ROOTS). Put the model under one "
                    "of them, register it, or ask the operator to add its directory"
                )

    def contains(self, path: str) -> bool:
        """Whether ``path`` (symlinks resolved) lies in one of the operator's model roots:
        whether a path a project member wrote may be read on this machine."""
        return self._inside(path)

    def _inside(self, value: str) -> bool:
        if value.strip().lower() in _BUNDLED:
            return True
        resolved = Path(os.path.realpath(Path(value).expanduser()))
        return any(resolved.is_relative_to(root) for root in self.model_roots)


def inprocess_policy(settings: Settings) -> InProcessPolicy:
    """The operator's policy from ``GENAI_INPROCESS_BACKENDS`` and ``GENAI_MODEL_ROOTS``."""
    return InProcessPolicy.of(settings.inprocess_backends, settings.model_roots)


def _paths(backend: str, options: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    for option in _PATH_OPTIONS.get(backend, ()):
        value = options.get(option)
        if isinstance(value, Mapping):
            for name, path in value.items():
                yield f"{option}.{name}", str(path)
        elif value is not None:
            yield option, str(value)
