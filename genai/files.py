"""Private files: what the platform keeps on disk is readable by its owner only.

The home directory holds the metadata database (keys' hashes, the usage ledger, cached
answers, DLP vault rows), Chroma's vectors, artifacts and key files. Directories are made
0700 and files 0600 whatever the process umask: a file we create ourselves is opened with
that mode and set to it; files a library creates (SQLite's, Chroma's) are made inside
:func:`private_umask`. Files and directories an older version left readable by others are
tightened when the platform opens them, with one info line each.

SQLite gives a database's ``-wal`` and ``-shm`` files the database file's own mode, so a
database created 0600 keeps its journal private too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "PRIVATE_DIR",
    "PRIVATE_FILE",
    "atomic_write_text",
    "is_open",
    "private_dir",
    "private_file",
    "private_tree",
    "private_umask",
    "tighten",
]

log = logging.getLogger("genai.files")

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
_OPEN = stat.S_IRWXG | stat.S_IRWXO  # any access for the group or others


class _Umask:
    """The process umask, narrowed while any :func:`private_umask` block runs."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.depth = 0
        self.saved = 0

    def enter(self) -> None:
        with self.lock:
            if self.depth == 0:
                self.saved = os.umask(0o077)
                os.umask(self.saved | 0o077)
            self.depth += 1

    def leave(self) -> None:
        with self.lock:
            self.depth -= 1
            if self.depth == 0:
                os.umask(self.saved)


_UMASK = _Umask()


@contextlib.contextmanager
def private_umask() -> Iterator[None]:
    """While inside, files and directories the process creates get no group or other
    access (the umask gains 077). For libraries that create files themselves (Chroma's
    index files, during its calls). The umask belongs to the whole process: nested and
    concurrent uses share one change, undone when the last one leaves; another thread
    creating a file meanwhile gets a private one too, which is never less safe."""
    _UMASK.enter()
    try:
        yield
    finally:
        _UMASK.leave()


def is_open(path: Path) -> bool:
    """Whether ``path`` exists and its group or others have any access to it."""
    try:
        return bool(path.lstat().st_mode & _OPEN)
    except FileNotFoundError:
        return False


def tighten(path: Path, mode: int | None = None, *, quiet: bool = False) -> bool:
    """Remove group and other access from ``path`` if it has any (one info line unless
    ``quiet``); whether it changed. Missing paths and others' paths are left alone."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(info.st_mode) or not info.st_mode & _OPEN or info.st_uid != os.getuid():
        return False
    if mode is None:
        mode = PRIVATE_DIR if stat.S_ISDIR(info.st_mode) else PRIVATE_FILE
    try:
        os.chmod(path, mode)
    except OSError as error:  # read-only file system, say: it stays as it was
        log.warning("could not make %s private (%s)", path, error.strerror)
        return False
    if not quiet:
        log.info("made %s private (mode %o, was %o)", path, mode, stat.S_IMODE(info.st_mode))
    return True


def private_dir(path: Path | str, *, tighten_existing: bool = True) -> Path:
    """``path`` as a directory: missing ones (parents too) are made 0700; an existing one
    is tightened unless ``tighten_existing`` is False (a directory the user chose, such as
    the parent of a database file named in GENAI_DATABASE_URL)."""
    path = Path(path).expanduser()
    missing: list[Path] = []
    cursor = path
    while not cursor.exists() and cursor != cursor.parent:
        missing.append(cursor)
        cursor = cursor.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(directory, PRIVATE_DIR)
            os.chmod(directory, PRIVATE_DIR)  # mkdir's mode passes through the umask
    if not missing and tighten_existing:
        tighten(path)
    return path


def private_file(path: Path | str) -> Path:
    """``path`` exists as a file, 0600: created empty when missing (an empty file is a valid
    new SQLite database), tightened when it is more open."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        tighten(path)
        return path
    try:
        os.fchmod(fd, PRIVATE_FILE)
    finally:
        os.close(fd)
    return path


def private_tree(root: Path) -> int:
    """Tighten every directory and file under ``root`` (and ``root``): what an older
    version left readable (one info line in all). How many were changed."""
    changed = int(tighten(root, quiet=True))
    for folder, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            changed += tighten(Path(folder) / name, quiet=True)
    if changed:
        log.info("made %d files and directories under %s private (0600/0700)", changed, root)
    return changed


def atomic_write_text(path: Path | str, text: str) -> Path:
    """Write ``text`` to ``path`` all at once: a temporary file beside it, flushed to disk,
    renamed over it. Readers see the old content or the new, never a part; a full disk
    leaves the old file and raises."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target
