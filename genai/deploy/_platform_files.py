"""Manifests as YAML: one multi-document stream, or a kustomize base (a file per object).

Both keep each mapping's keys in the order the manifests were built, so the same options
give the same bytes. Files are written atomically (a temporary file in the same directory,
then a rename) and left untouched when their content is already right; files a previous run
listed in ``kustomization.yaml`` that this one does not write are removed.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from genai.errors import ValidationError

__all__ = ["KUSTOMIZATION", "dump_yaml", "file_name", "write_kustomize"]

KUSTOMIZATION = "kustomization.yaml"
_KINDS = {"CustomResourceDefinition": "crd"}


def _dump(document: Any) -> str:
    text: str = yaml.safe_dump(
        document, sort_keys=False, default_flow_style=False, allow_unicode=True, width=100
    )
    return text


def dump_yaml(manifests: list[dict[str, Any]]) -> str:
    """A multi-document YAML stream, ``---`` between documents, keys in built order."""
    return "---\n".join(_dump(m) for m in manifests)


def file_name(manifest: dict[str, Any]) -> str:
    """A stable file name: ``gateway-deployment.yaml``, ``namespace.yaml``,
    ``genaideployments-crd.yaml``..."""
    kind = manifest["kind"]
    if kind == "Namespace":
        return "namespace.yaml"
    name = str(manifest["metadata"]["name"]).split(".", 1)[0].removeprefix("genai-")
    return f"{name}-{_KINDS.get(kind, kind.lower())}.yaml"


def _write_atomic(path: Path, text: str) -> None:
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return  # already right: keep the file (and its mtime)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _listed(directory: Path) -> list[str]:
    """The resources an existing kustomization lists (empty when there is none)."""
    path = directory / KUSTOMIZATION
    if not path.is_file():
        return []
    try:
        found = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError:
        return []
    resources = found.get("resources") if isinstance(found, dict) else None
    return [r for r in resources if isinstance(r, str)] if isinstance(resources, list) else []


def write_kustomize(manifests: list[dict[str, Any]], directory: Path) -> list[Path]:
    """Write one YAML file per object and a ``kustomization.yaml`` listing them, in the
    manifests' order; return the paths written (the kustomization last)."""
    names = [file_name(m) for m in manifests]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValidationError(f"two objects would share the file {repeated[0]}", field="manifests")
    directory.mkdir(parents=True, exist_ok=True)
    before = _listed(directory)
    paths: list[Path] = []
    for name, manifest in zip(names, manifests, strict=True):
        path = directory / name
        _write_atomic(path, _dump(manifest))
        paths.append(path)
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": names,
    }
    _write_atomic(directory / KUSTOMIZATION, _dump(kustomization))
    paths.append(directory / KUSTOMIZATION)
    for stale in before:
        # only what our previous kustomization listed, and only plain names in this folder
        if stale not in names and "/" not in stale and stale.endswith(".yaml"):
            (directory / stale).unlink(missing_ok=True)
    return paths
