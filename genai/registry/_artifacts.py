"""A content-addressed artifact store on any fsspec file system.

A blob lives at ``<root>/sha256/<ab>/<abcdef…>`` under its own SHA-256; a directory is
stored as its files' blobs plus a manifest blob (JSON: relative path → sha256 and size)
whose hash names the directory. Writes go to a temporary name and are renamed into place
(atomic on a local disk; object stores publish a whole object at once). Every read checks
the bytes against their hash and raises :class:`ArtifactIntegrityError` on a mismatch.

On a local disk the store is private: directories 0700 and blobs 0600, whatever the
umask; a root an older version left open is tightened (the root and ``sha256/``, which
closes everything under them). Remote file systems (s3://, gs://) keep their own access
control.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import fsspec

from genai.errors import ArtifactIntegrityError, NotFoundError, ValidationError
from genai.files import PRIVATE_FILE, private_dir, tighten

__all__ = ["MANIFEST_KIND", "ArtifactStore"]

MANIFEST_KIND = "genai.directory/v1"
_CHUNK = 1 << 20
_SHA = re.compile(r"^[0-9a-f]{64}$")


class ArtifactStore:
    def __init__(self, root: str) -> None:
        self.root_url = root
        self._fs, root_path = fsspec.core.url_to_fs(root)
        self._root = root_path.rstrip("/")
        self._local = "file" in _protocols(self._fs)
        if self._local:
            private_dir(Path(self._root))
            tighten(Path(self._root) / "sha256")

    # ---------------------------------------------------------------- writing

    def put_bytes(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        if not self.exists(digest):
            self._publish(digest, lambda out: out.write(data))
        return digest

    def put_file(self, path: str | os.PathLike[str]) -> str:
        digest = _hash_file(Path(path))
        if not self.exists(digest):

            def copy(out: IO[bytes]) -> None:
                with open(path, "rb") as src:
                    shutil.copyfileobj(src, out, _CHUNK)

            self._publish(digest, copy)
        return digest

    def put_dir(self, path: str | os.PathLike[str]) -> str:
        """Store every file under ``path``; returns the manifest's hash."""
        base = Path(path)
        if not base.is_dir():
            raise ValidationError(f"{base} is not a directory", field="path")
        files: dict[str, dict[str, Any]] = {}
        for file in sorted(p for p in base.rglob("*") if p.is_file()):
            rel = file.relative_to(base).as_posix()
            files[rel] = {"sha256": self.put_file(file), "size": file.stat().st_size}
        manifest = {"kind": MANIFEST_KIND, "files": files}
        return self.put_bytes(json.dumps(manifest, sort_keys=True).encode())

    # ---------------------------------------------------------------- reading

    def exists(self, digest: str) -> bool:
        return bool(self._fs.exists(self._path(digest)))

    def read_bytes(self, digest: str) -> bytes:
        data = self._open_read(digest)
        actual = hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise self._corrupt(digest, actual)
        return data

    def get_file(self, digest: str, dest: str | os.PathLike[str]) -> Path:
        """Copy a blob to ``dest`` once its bytes check out; nothing is left on a mismatch."""
        target = Path(dest)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        try:
            hasher = hashlib.sha256()
            with os.fdopen(fd, "wb") as out, self._open_stream(digest) as src:
                for chunk in iter(lambda: src.read(_CHUNK), b""):
                    hasher.update(chunk)
                    out.write(chunk)
            if hasher.hexdigest() != digest:
                raise self._corrupt(digest, hasher.hexdigest())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    def manifest(self, digest: str) -> dict[str, dict[str, Any]]:
        try:
            manifest = json.loads(self.read_bytes(digest))
        except (UnicodeDecodeError, json.JSONDecodeError):
            manifest = None
        if not isinstance(manifest, dict) or manifest.get("kind") != MANIFEST_KIND:
            raise ValidationError(f"artifact {digest[:12]}… is a file, not a directory")
        return dict(manifest["files"])

    def get_dir(self, digest: str, dest: str | os.PathLike[str]) -> Path:
        """Materialise a stored directory at ``dest`` (every file checked)."""
        target = Path(dest)
        staging = Path(tempfile.mkdtemp(dir=target.parent if target.parent.exists() else None))
        try:
            for rel, entry in self.manifest(digest).items():
                self.get_file(entry["sha256"], _inside(staging, rel, digest))
            if target.exists():
                shutil.rmtree(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(staging), target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target

    def verify(self, digest: str) -> None:
        """Check a blob (and, for a directory, every file in it) against its hash."""
        self.read_bytes(digest)
        try:
            entries = self.manifest(digest)
        except ValidationError:
            return
        for entry in entries.values():
            self.read_bytes(entry["sha256"])

    # ---------------------------------------------------------------- internals

    def _path(self, digest: str) -> str:
        if not _SHA.match(digest):
            raise ValidationError(f"{digest!r} is not a sha256 hex digest", field="artifact")
        return f"{self._root}/sha256/{digest[:2]}/{digest}"

    def _publish(self, digest: str, write: Any) -> None:
        final = self._path(digest)
        folder = final.rsplit("/", 1)[0]
        if self._local:
            private_dir(Path(folder), tighten_existing=False)
            tmp = f"{folder}/.{digest}.{uuid.uuid4().hex}.tmp"
            try:
                with _private_open(tmp) as out:
                    write(out)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, final)
            finally:
                Path(tmp).unlink(missing_ok=True)
        else:
            self._fs.makedirs(folder, exist_ok=True)
            with self._fs.open(final, "wb") as out:
                write(out)

    def _open_read(self, digest: str) -> bytes:
        with self._open_stream(digest) as src:
            return bytes(src.read())

    def _open_stream(self, digest: str) -> Any:
        path = self._path(digest)
        try:
            return self._fs.open(path, "rb")
        except FileNotFoundError:
            raise NotFoundError(
                f"artifact {digest[:12]}… is missing from {self.root_url}: it was deleted or "
                "the artifact root (GENAI_ARTIFACT_ROOT) changed"
            ) from None

    def _corrupt(self, digest: str, actual: str) -> ArtifactIntegrityError:
        return ArtifactIntegrityError(
            f"artifact {digest[:12]}… in {self.root_url} is corrupted: its bytes hash to "
            f"{actual[:12]}…. Restore it from a backup or register the artifact again"
        )

    def iter_digests(self) -> Iterator[str]:
        for path in self._fs.find(f"{self._root}/sha256"):
            name = path.rsplit("/", 1)[-1]
            if _SHA.match(name):
                yield name


def _inside(base: Path, rel: str, digest: str) -> Path:
    """``base / rel``, refusing a manifest path that would land outside ``base``."""
    target = (base / rel).resolve()
    if Path(rel).is_absolute() or not target.is_relative_to(base.resolve()):
        raise ArtifactIntegrityError(
            f"directory artifact {digest[:12]}… lists the path {rel!r}, which leaves its "
            "directory: the manifest was tampered with; nothing was written"
        )
    return target


def _private_open(path: str) -> IO[bytes]:
    """A new file for writing, 0600 whatever the umask (it keeps the mode when renamed)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    os.fchmod(fd, PRIVATE_FILE)
    return os.fdopen(fd, "wb")


def _protocols(fs: Any) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def _hash_file(path: Path) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as src:
        for chunk in iter(lambda: src.read(_CHUNK), b""):
            hasher.update(chunk)
    return hasher.hexdigest()
