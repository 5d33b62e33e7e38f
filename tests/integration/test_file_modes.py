"""Everything the platform writes under GENAI_HOME is its owner's alone, whatever the umask.

A platform initialised under a umask of 022 (files 0644, directories 0755 by default), then
used as it is used: a project, a knowledge base ingested (embedded Chroma, the BM25 index
as an artifact), a semantic-cache entry with its own Chroma collection, a registered
artifact, the DLP key. Every file under GENAI_HOME must then be 0600 and every directory
0700. Files an older version left readable are tightened when the platform opens them.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

import genai
from cache import Partition, SemanticCache
from genai.dlp import Dlp
from genai.registry import ArtifactStore
from genai.store import Store
from genai.store import schema as t
from genai.vectors import ChromaVectorStore
from rag import KnowledgeBases


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def modes(home: Path) -> dict[str, str]:
    """Every path under ``home`` (and ``home``) whose mode is not private: path → mode."""
    found = {}
    for path in [home, *home.rglob("*")]:
        info = path.lstat()
        wanted = 0o700 if stat.S_ISDIR(info.st_mode) else 0o600
        if stat.S_IMODE(info.st_mode) != wanted:
            found[str(path.relative_to(home.parent))] = oct(stat.S_IMODE(info.st_mode))
    return found


def use_the_platform(settings: genai.Settings, embedder: Any, docs: Path) -> None:
    genai.init(settings, admin="admin")
    with genai.connect(settings) as client:
        client.projects.create("team")
        KnowledgeBases(client).create("team", "docs").ingest([docs])
        with client.store.session() as s:
            pid = s.scalar(select(t.Project.id).where(t.Project.name == "team")) or 0
        cache = SemanticCache(
            ChromaVectorStore(settings.resolved_vector_path),
            embedder,
            store=client.store,
            index_after=1,  # the first entry makes its scope's collection
        )
        part = Partition(project_id=pid, deployment="d")
        cache.store(part, "How do I open an account?", "Settings, then Accounts.")
        cache.store(part, "How do I close an account?", "Settings, then Close.")
        assert cache.lookup(part, "How do I open an account?") is not None
        cache.close()
        artifacts = ArtifactStore(settings.resolved_artifact_root)
        artifacts.put_bytes(b"adapter weights")
        Dlp.from_settings(settings, client.store).keys.mac("value", 1, "s", "EMAIL", "x")


def test_everything_under_home_is_private_whatever_the_umask(
    tmp_path: Path, umask_022: None, embedder: Any
) -> None:
    home = tmp_path / "home"
    docs = tmp_path / "docs" / "guide.md"
    docs.parent.mkdir()
    docs.write_text("# Guide\nAccounts are opened under Settings, then Accounts.\n")
    settings = genai.Settings(home=home, user="admin")

    use_the_platform(settings, embedder, docs)

    assert os.umask(0o022) == 0o022, "the process umask was left changed"
    made = {p.name for p in home.iterdir()}
    assert {"genai.db", "chroma", "artifacts", "dlp.key"} <= made, made
    assert any((home / "artifacts" / "sha256").rglob("*")), "no artifact was written"
    assert modes(home) == {}


def test_files_an_older_version_left_readable_are_tightened(
    tmp_path: Path, umask_022: None, caplog: pytest.LogCaptureFixture
) -> None:
    home = tmp_path / "home"
    settings = genai.Settings(home=home, user="admin")
    genai.init(settings, admin="admin")
    ChromaVectorStore(settings.resolved_vector_path).warm()
    old_file = settings.resolved_vector_path / "notes.bin"
    old_file.write_bytes(b"x")
    db = home / "genai.db"
    for path, mode in ((home, 0o755), (db, 0o644), (old_file, 0o644)):
        os.chmod(path, mode)
    (settings.resolved_vector_path).chmod(0o755)
    assert modes(home) != {}

    with caplog.at_level(logging.INFO, logger="genai.files"):
        genai.connect(settings).close()
        Store(settings.resolved_database_url).dispose()
        from genai.vectors import embedded_client

        embedded_client(settings.resolved_vector_path)

    assert modes(home) == {}
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "genai.db private" in said and "chroma private" in said, said
