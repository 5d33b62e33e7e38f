"""Materialise a stored directory (a model or an adapter) where a pod reads it.

``genai k8s fetch`` (the pods' init container) and the adapter agent both call
:func:`fetch_artifact`: it reads the directory's manifest from the artifact store, writes
every file into a temporary directory beside the destination (each file checked against
its hash by the store), and renames that directory into place, so a reader sees the whole
directory or nothing. A destination that already holds every file of the manifest (same
sizes) is kept: a restarted init container does not fetch again.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import fsspec

from genai.errors import NotFoundError, ValidationError
from genai.registry._artifacts import ArtifactStore

__all__ = ["check_digest", "fetch_artifact", "fetch_from", "open_store"]

_DIGEST = re.compile(r"^[0-9a-f]{64}$")
#: What a materialised directory allows: the pod's other containers (vLLM) read it.
_DIR_MODE = 0o755
_FILE_MODE = 0o644


def open_store(artifacts_url: str) -> ArtifactStore:
    """The artifact store at ``artifacts_url``; a local root that does not exist is a
    :class:`NotFoundError` (rather than a new, empty store)."""
    if not artifacts_url:
        raise ValidationError("no artifacts URL given: pass --artifacts-url", field="artifacts_url")
    fs, root = fsspec.core.url_to_fs(artifacts_url)
    protocols = (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)
    if "file" in protocols and not Path(root).is_dir():
        raise NotFoundError(
            f"no artifact store at {artifacts_url}: the directory does not exist; check "
            "--artifacts-url (the store's root, as GENAI_ARTIFACT_ROOT names it)"
        )
    return ArtifactStore(artifacts_url)


def fetch_artifact(artifacts_url: str, digest: str, to: Path) -> Path:
    """Materialise the stored directory ``digest`` at ``to`` atomically; returns ``to``.

    Raises :class:`ValidationError` for a string that is not a sha256 digest (or the digest
    of a file rather than a directory), :class:`NotFoundError` for a digest the store does
    not hold, :class:`~genai.errors.ArtifactIntegrityError` when stored bytes do not match
    their hash (then nothing is written at ``to``).
    """
    check_digest(digest)
    return fetch_from(open_store(artifacts_url), digest, Path(to))


def check_digest(digest: str) -> None:
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise ValidationError(
            f"{digest!r} is not an artifact digest: give the 64 lowercase hex digits of its "
            "sha256 (as the registry lists it)",
            field="digest",
        )


def fetch_from(store: ArtifactStore, digest: str, to: Path) -> Path:
    """:func:`fetch_artifact` with a store already opened (the agent keeps one)."""
    check_digest(digest)
    files = store.manifest(digest)  # NotFoundError, ValidationError (a file), integrity
    if _complete(to, files):
        return to
    to.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=to.parent, prefix=f".{to.name}.fetch-"))
    try:
        fresh = store.get_dir(digest, staging / "dir")
        _open_up(fresh)
        _publish(fresh, to, files)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return to


def _complete(to: Path, files: dict[str, dict[str, Any]]) -> bool:
    """Whether ``to`` holds every file of the manifest at its size (a finished fetch)."""
    if not to.is_dir():
        return False
    for rel, entry in files.items():
        path = to / rel
        if not path.is_file() or path.stat().st_size != entry.get("size"):
            return False
    return True


def _publish(fresh: Path, to: Path, files: dict[str, dict[str, Any]]) -> None:
    """Rename ``fresh`` to ``to``; an incomplete ``to`` (an older, interrupted copy) is moved
    aside first and removed after. A complete ``to`` that another fetch published meanwhile
    is kept."""
    stale: Path | None = None
    if to.exists() or to.is_symlink():
        stale = to.parent / f".{to.name}.stale-{uuid.uuid4().hex[:8]}"
        with contextlib.suppress(FileNotFoundError):
            os.rename(to, stale)
    try:
        os.rename(fresh, to)
    except OSError:
        if not _complete(to, files):
            raise
    finally:
        if stale is not None:
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)


def _open_up(root: Path) -> None:
    """Let the pod's other containers read what the store wrote private (0700/0600)."""
    root.chmod(_DIR_MODE)
    for path in root.rglob("*"):
        path.chmod(_DIR_MODE if path.is_dir() else _FILE_MODE)
