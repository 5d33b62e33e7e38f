"""Serving registry entries by reference: ``model:name@version`` and ``adapter:name@alias``.

An adapter reference is downloaded from the artifact store (every byte checked) into a
cache under ``GENAI_HOME`` and served only if the registry says it was trained on the base
model this server serves.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from genai._client import Client
from genai.errors import ValidationError
from genai.registry import ModelVersion, Ref

__all__ = ["RegistrySource"]


class RegistrySource:
    """Resolves registry references of one project for a model server."""

    def __init__(self, client: Client, project: str, *, cache_dir: Path | None = None) -> None:
        self._client = client
        self._project = project
        self._cache = cache_dir or client.settings.home / "serving" / "adapters"
        self.served: ModelVersion | None = None
        self.served_dir: Path | None = None

    def model_dir(self, ref: str) -> Path:
        """The local directory of a registered base model (which becomes the served one)."""
        models = self._client.registry.models
        info = models.get(self._project, str(Ref.parse(ref, kind="model")))
        source = models.local_path(self._project, info.ref)  # an imported model: unpacked once
        self.served, self.served_dir = info, source.resolve()
        return source

    def serve_directory(self, path: Path) -> None:
        """Serve a plain directory: registry adapters must then name it as their base's source."""
        self.served_dir = path.resolve()

    async def adapter_dir(self, path_or_ref: str) -> str:
        """A directory for ``lora_path``: itself, or a registry adapter made local."""
        if not path_or_ref.startswith("adapter:"):
            return path_or_ref
        return await asyncio.to_thread(self._fetch, path_or_ref)

    def _fetch(self, ref: str) -> str:
        info = self._client.registry.adapters.get(
            self._project, str(Ref.parse(ref, kind="adapter"))
        )
        base = self._client.registry.models.get(self._project, info.base_model.split(":", 1)[1])
        if self.served is not None:
            fits = base.ref == self.served.ref
        else:
            fits = self.served_dir is not None and Path(base.source).resolve() == self.served_dir
        if not fits:
            serving = self.served.ref if self.served else str(self.served_dir)
            raise ValidationError(
                f"{info.ref} was trained on {info.base_model}, but this server serves {serving}: "
                "serve it from a server of its own base model",
                field="lora_path",
            )
        if not info.artifact:
            raise ValidationError(f"{info.ref} was registered without files", field="lora_path")
        target = self._cache / info.artifact
        if not (target / "adapter_config.json").is_file():
            self._client.registry.artifacts.get_dir(info.artifact, target)
        return str(target)
