"""Knowledge bases, and the VectorStore contract, on a Chroma *server* (``GENAI_CHROMA_URL``):
a real ``chroma run`` on 127.0.0.1 started from the virtual environment's ``chroma`` CLI.
Mandatory under CI=true.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _servers import free_port, wait_for_health

import genai
from genai.errors import BackendError, NotFoundError
from genai.testing import VectorStoreSuite
from genai.vectors import ChromaVectorStore, VectorStore
from rag import KnowledgeBases, SplitterConfig

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="module")
def chroma_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    exe = Path(sys.executable).parent / "chroma"
    if not exe.exists():
        message = f"the chroma CLI is not installed beside {sys.executable} (pip install chromadb)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    port = free_port()
    data = tmp_path_factory.mktemp("chroma-server")
    log = open(data.parent / f"chroma-{port}.log", "wb")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [str(exe), "run", "--path", str(data), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(
            f"{url}/api/v2/heartbeat",
            server,
            output=(data.parent / f"chroma-{port}.log").read_text,
        )
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture
def server_platform(settings_factory: Any, chroma_url: str) -> Iterator[Any]:
    settings = settings_factory(chroma_url=chroma_url)
    genai.init(settings, admin="admin")
    clients: list[genai.Client] = []

    def connect(user: str = "admin") -> genai.Client:
        client = genai.connect(settings, user=user)
        clients.append(client)
        return client

    yield connect, settings
    for client in clients:
        client.close()


def test_ingest_sync_and_retrieve_on_a_chroma_server(
    server_platform: Any, embedder: Any, tmp_path: Path
) -> None:
    connect, settings = server_platform
    admin = connect()
    admin.projects.create("srv-a")
    kbs = KnowledgeBases(admin, embedder=embedder)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# Billing\n\nInvoices are sent on the first of the month.\n")
    (docs / "b.txt").write_text("The office is closed on public holidays.\n")
    kb = kbs.create("srv-a", "docs", splitter=SplitterConfig(chunk_size=64, chunk_overlap=8))
    first = kb.ingest([docs])
    assert len(first.added) == 2 and first.version == 1
    server_names = {c.name for c in kbs.chroma().list_collections()}
    assert kb.info.collection in server_names
    assert not settings.resolved_vector_path.exists()  # nothing embedded on this machine

    (docs / "b.txt").unlink()
    (docs / "a.md").write_text("# Billing\n\nInvoices are sent on the fifth of the month.\n")
    second = kb.ingest([docs])
    assert (len(second.updated), len(second.deleted)) == (1, 1)

    # another process's view: a fresh client of the same server and database
    other = KnowledgeBases(connect(), embedder=embedder)
    for mode in ("dense", "sparse", "hybrid"):
        hits = other.get("srv-a", "docs").retrieve("when are invoices sent?", k=3, mode=mode)
        assert hits and "fifth" in hits[0].text
        assert all("holidays" not in h.text and "first of" not in h.text for h in hits)


def test_projects_on_one_server_stay_apart(
    server_platform: Any, embedder: Any, tmp_path: Path
) -> None:
    connect, _ = server_platform
    admin = connect()
    for project in ("srv-x", "srv-y"):
        admin.projects.create(project)
    admin.projects.add_member("srv-y", "yuri", role="developer")
    (tmp_path / "x.md").write_text("# X\n\nThe x secret is 42.\n")
    kb_x = KnowledgeBases(admin, embedder=embedder).create("srv-x", "docs")
    kb_x.ingest([tmp_path / "x.md"])
    yuri = KnowledgeBases(connect("yuri"), embedder=embedder)
    kb_y = yuri.create("srv-y", "docs")
    assert kb_y.info.collection != kb_x.info.collection
    assert kb_y.retrieve("x secret") == []
    with pytest.raises(NotFoundError):
        yuri.get("srv-x", "docs")


def test_an_unreachable_server_is_a_backend_error(settings_factory: Any) -> None:
    from rag._chroma import chroma_client

    settings = settings_factory(chroma_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(BackendError, match=r"GENAI_CHROMA_URL|chroma run") as caught:
        chroma_client(settings).heartbeat()
    assert caught.value.backend == "chroma"


class TestChromaServerVectorStore(VectorStoreSuite):
    """The VectorStore contract (``genai.testing.VectorStoreSuite``) over HTTP, on a server
    emptied before each test (the knowledge-base tests above leave their collections)."""

    @pytest.fixture
    def store(self, chroma_url: str) -> VectorStore:
        store = ChromaVectorStore(url=chroma_url)
        for name in store.collections():
            store.drop(name)
        return store
