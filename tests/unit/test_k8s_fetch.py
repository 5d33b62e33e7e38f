"""``fetch_artifact``: what a pod's init container and adapter agent do with a stored
directory: all of it appears at once, a complete copy is kept, and bad bytes, digests or
store URLs fail with a message and leave nothing behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from genai.deploy import fetch_artifact
from genai.errors import ArtifactIntegrityError, NotFoundError, ValidationError
from genai.registry import ArtifactStore


@pytest.fixture
def stored(tmp_path: Path) -> tuple[str, str]:
    """(the store's URL, the digest of a two-file adapter directory in it)."""
    source = tmp_path / "src"
    (source / "nested").mkdir(parents=True)
    (source / "adapter_config.json").write_text('{"r": 8, "peft_type": "LORA"}')
    (source / "nested" / "weights.bin").write_bytes(b"\x00\x01" * 512)
    root = tmp_path / "store"
    return str(root), ArtifactStore(str(root)).put_dir(source)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_a_directory_is_materialised_whole_and_readable(
    tmp_path: Path, stored: tuple[str, str]
) -> None:
    url, digest = stored
    to = tmp_path / "models" / digest
    assert fetch_artifact(url, digest, to) == to
    assert _files(to) == _files(tmp_path / "src")
    assert os.listdir(to.parent) == [digest]  # no staging directory left beside it
    # vLLM runs in another container of the pod: it must read what the fetcher wrote
    assert stat.S_IMODE(to.stat().st_mode) == 0o755
    assert stat.S_IMODE((to / "nested" / "weights.bin").stat().st_mode) == 0o644


def test_a_complete_copy_is_kept(tmp_path: Path, stored: tuple[str, str]) -> None:
    url, digest = stored
    to = tmp_path / "models" / digest
    fetch_artifact(url, digest, to)
    inode = to.stat().st_ino
    (to / "written-by-vllm.lock").write_text("")
    assert fetch_artifact(url, digest, to) == to
    assert to.stat().st_ino == inode and (to / "written-by-vllm.lock").exists()


def test_an_interrupted_copy_is_replaced(tmp_path: Path, stored: tuple[str, str]) -> None:
    url, digest = stored
    to = tmp_path / "models" / digest
    to.mkdir(parents=True)
    (to / "adapter_config.json").write_text('{"r": 8, "peft_type": "LORA"}')
    (to / "nested").mkdir()
    (to / "nested" / "weights.bin").write_bytes(b"\x00")  # cut short
    fetch_artifact(url, digest, to)
    assert _files(to) == _files(tmp_path / "src")
    assert os.listdir(to.parent) == [digest]


def test_corrupted_bytes_fail_and_leave_nothing(tmp_path: Path, stored: tuple[str, str]) -> None:
    url, digest = stored
    blob = ArtifactStore(url).manifest(digest)["nested/weights.bin"]["sha256"]
    (Path(url) / "sha256" / blob[:2] / blob).write_bytes(b"tampered")
    to = tmp_path / "models" / digest
    with pytest.raises(ArtifactIntegrityError, match="corrupted"):
        fetch_artifact(url, digest, to)
    assert not to.exists() and os.listdir(to.parent) == []


def test_bad_digests_and_stores_are_named(tmp_path: Path, stored: tuple[str, str]) -> None:
    url, digest = stored
    to = tmp_path / "out"
    with pytest.raises(ValidationError, match="not an artifact digest"):
        fetch_artifact(url, "latest", to)
    with pytest.raises(ValidationError, match="not an artifact digest"):
        fetch_artifact(url, digest.upper(), to)
    with pytest.raises(NotFoundError, match="missing"):
        fetch_artifact(url, "0" * 64, to)
    a_file = ArtifactStore(url).put_bytes(b"just bytes")
    with pytest.raises(ValidationError, match="not a directory"):
        fetch_artifact(url, a_file, to)
    nowhere = tmp_path / "no-store"
    with pytest.raises(NotFoundError, match="no artifact store"):
        fetch_artifact(str(nowhere), digest, to)
    assert not nowhere.exists() and not to.exists()
