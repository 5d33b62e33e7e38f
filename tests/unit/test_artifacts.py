"""The content-addressed artifact store, on a local directory and on fsspec ``memory://``.

Blobs live at ``<root>/sha256/<ab>/<digest>`` (the layout the module documents); tests that
corrupt a blob write there through fsspec, the way a failing disk or a careless operator
would.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest

from genai.errors import ArtifactIntegrityError, NotFoundError, ValidationError
from genai.registry import MANIFEST_KIND, ArtifactStore


@pytest.fixture(params=["local", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ArtifactStore]:
    if request.param == "local":
        yield ArtifactStore(str(tmp_path / "artifacts"))
        return
    # The memory file system is process-wide: a fresh root per test keeps tests apart.
    root = f"memory://artifacts-{uuid.uuid4().hex}"
    yield ArtifactStore(root)
    fs, path = fsspec.core.url_to_fs(root)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _corrupt(store: ArtifactStore, digest: str, data: bytes = b"tampered bytes") -> None:
    fs, root = fsspec.core.url_to_fs(store.root_url)
    path = f"{root.rstrip('/')}/sha256/{digest[:2]}/{digest}"
    assert fs.exists(path), "the documented blob layout changed"
    fs.pipe_file(path, data)


def _remove(store: ArtifactStore, digest: str) -> None:
    fs, root = fsspec.core.url_to_fs(store.root_url)
    fs.rm(f"{root.rstrip('/')}/sha256/{digest[:2]}/{digest}")


def _tree(base: Path) -> dict[str, bytes]:
    return {p.relative_to(base).as_posix(): p.read_bytes() for p in base.rglob("*") if p.is_file()}


@pytest.fixture
def source_dir(tmp_path: Path) -> Path:
    base = tmp_path / "adapter"
    (base / "nested" / "deeper").mkdir(parents=True)
    (base / "adapter_config.json").write_text('{"r": 8}')
    (base / "adapter_model.safetensors").write_bytes(bytes(range(256)) * 64)
    (base / "nested" / "notes.txt").write_text("héllo\n")
    (base / "nested" / "deeper" / "empty.bin").write_bytes(b"")
    return base


# ------------------------------------------------------------------ writing and dedup


def test_put_bytes_returns_the_sha256_and_reads_back(store: ArtifactStore) -> None:
    data = b"some weights"
    digest = store.put_bytes(data)
    assert digest == _sha(data)
    assert store.exists(digest)
    assert store.read_bytes(digest) == data


def test_same_content_is_stored_once(store: ArtifactStore, tmp_path: Path) -> None:
    data = b"identical content"
    file = tmp_path / "blob.bin"
    file.write_bytes(data)
    digests = {store.put_bytes(data), store.put_bytes(data), store.put_file(file)}
    assert digests == {_sha(data)}
    assert list(store.iter_digests()) == [_sha(data)]


def test_different_content_gets_different_blobs(store: ArtifactStore) -> None:
    first, second = store.put_bytes(b"one"), store.put_bytes(b"two")
    assert first != second
    assert sorted(store.iter_digests()) == sorted([first, second])


def test_put_dir_dedups_directories_and_their_files(
    store: ArtifactStore, source_dir: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    for rel, data in _tree(source_dir).items():
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        (copy / rel).write_bytes(data)
    digest = store.put_dir(source_dir)
    assert store.put_dir(copy) == digest
    # four member files + one manifest, whatever the number of puts
    assert len(set(store.iter_digests())) == 5


def test_manifest_lists_every_file_with_hash_and_size(
    store: ArtifactStore, source_dir: Path
) -> None:
    manifest = store.manifest(store.put_dir(source_dir))
    expected = {
        rel: {"sha256": _sha(data), "size": len(data)} for rel, data in _tree(source_dir).items()
    }
    assert manifest == expected


def test_put_dir_of_a_file_is_refused(store: ArtifactStore, tmp_path: Path) -> None:
    file = tmp_path / "plain.txt"
    file.write_text("x")
    with pytest.raises(ValidationError):
        store.put_dir(file)


# ------------------------------------------------------------------ reading


def test_get_dir_round_trip_is_byte_identical(
    store: ArtifactStore, source_dir: Path, tmp_path: Path
) -> None:
    dest = store.get_dir(store.put_dir(source_dir), tmp_path / "out" / "adapter")
    assert dest == tmp_path / "out" / "adapter"
    assert _tree(dest) == _tree(source_dir)


def test_get_dir_replaces_an_existing_destination(
    store: ArtifactStore, source_dir: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "stale.txt").write_text("left over")
    store.get_dir(store.put_dir(source_dir), dest)
    assert _tree(dest) == _tree(source_dir)


def test_get_file_copies_a_blob(store: ArtifactStore, tmp_path: Path) -> None:
    data = b"\x00\x01binary\xff" * 1000
    target = store.get_file(store.put_bytes(data), tmp_path / "sub" / "weights.bin")
    assert target.read_bytes() == data


def test_missing_blob_is_not_found(store: ArtifactStore, tmp_path: Path) -> None:
    digest = _sha(b"never stored")
    assert not store.exists(digest)
    with pytest.raises(NotFoundError, match=digest[:12]):
        store.read_bytes(digest)
    with pytest.raises(NotFoundError):
        store.get_file(digest, tmp_path / "dest.bin")
    assert not (tmp_path / "dest.bin").exists()


@pytest.mark.parametrize(
    "digest",
    ["", "abc", "0" * 63, "0" * 65, "A" * 64, "g" * 64, "../" + "0" * 61, "0" * 62 + "/x"],
)
def test_invalid_digest_is_a_validation_error(store: ArtifactStore, digest: str) -> None:
    with pytest.raises(ValidationError):
        store.read_bytes(digest)
    with pytest.raises(ValidationError):
        store.exists(digest)


def test_manifest_of_a_plain_file_is_refused(store: ArtifactStore) -> None:
    for data in (b"plain text", b"\xff\xfe not utf-8", b"[1, 2]", b'{"kind": "other"}'):
        with pytest.raises(ValidationError, match="not a directory"):
            store.manifest(store.put_bytes(data))


def test_get_dir_of_a_plain_file_is_refused(store: ArtifactStore, tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        store.get_dir(store.put_bytes(b"just a file"), tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ integrity


def test_read_of_a_corrupted_blob_raises(store: ArtifactStore) -> None:
    digest = store.put_bytes(b"original")
    _corrupt(store, digest)
    with pytest.raises(ArtifactIntegrityError, match="corrupted") as caught:
        store.read_bytes(digest)
    assert caught.value.retryable is False


def test_get_file_of_a_corrupted_blob_leaves_nothing_at_dest(
    store: ArtifactStore, tmp_path: Path
) -> None:
    digest = store.put_bytes(b"original " * 10_000)
    _corrupt(store, digest, b"original " * 9_999 + b"tampered!")
    dest_dir = tmp_path / "dest"
    dest_dir.mkdir()
    with pytest.raises(ArtifactIntegrityError):
        store.get_file(digest, dest_dir / "weights.bin")
    assert list(dest_dir.iterdir()) == []  # neither the file nor a temporary part of it


def test_get_file_of_a_corrupted_blob_keeps_an_existing_dest(
    store: ArtifactStore, tmp_path: Path
) -> None:
    digest = store.put_bytes(b"new")
    _corrupt(store, digest)
    (tmp_path / "out").mkdir()
    dest = tmp_path / "out" / "weights.bin"
    dest.write_bytes(b"previous good copy")
    with pytest.raises(ArtifactIntegrityError):
        store.get_file(digest, dest)
    assert dest.read_bytes() == b"previous good copy"
    assert [p.name for p in dest.parent.iterdir()] == ["weights.bin"]


def test_verify_passes_on_intact_blobs_and_directories(
    store: ArtifactStore, source_dir: Path
) -> None:
    store.verify(store.put_bytes(b"fine"))
    store.verify(store.put_dir(source_dir))


def test_verify_of_a_directory_catches_a_corrupted_member(
    store: ArtifactStore, source_dir: Path
) -> None:
    digest = store.put_dir(source_dir)
    member = store.manifest(digest)["nested/notes.txt"]["sha256"]
    _corrupt(store, member)
    store.read_bytes(digest)  # the manifest itself is intact
    with pytest.raises(ArtifactIntegrityError, match=member[:12]):
        store.verify(digest)


def test_verify_of_a_directory_catches_a_missing_member(
    store: ArtifactStore, source_dir: Path
) -> None:
    digest = store.put_dir(source_dir)
    _remove(store, store.manifest(digest)["adapter_config.json"]["sha256"])
    with pytest.raises(NotFoundError):
        store.verify(digest)


def test_get_dir_with_a_corrupted_member_keeps_dest_and_leaves_no_staging(
    store: ArtifactStore, source_dir: Path, tmp_path: Path
) -> None:
    digest = store.put_dir(source_dir)
    _corrupt(store, store.manifest(digest)["adapter_model.safetensors"]["sha256"])
    out = tmp_path / "out"
    out.mkdir()
    dest = out / "adapter"
    dest.mkdir()
    (dest / "kept.txt").write_text("previous")
    with pytest.raises(ArtifactIntegrityError):
        store.get_dir(digest, dest)
    assert _tree(dest) == {"kept.txt": b"previous"}
    assert [p.name for p in out.iterdir()] == ["adapter"]


def test_a_manifest_is_json_naming_its_kind(store: ArtifactStore, source_dir: Path) -> None:
    document = json.loads(store.read_bytes(store.put_dir(source_dir)))
    assert document["kind"] == MANIFEST_KIND
    assert set(document["files"]) == set(_tree(source_dir))


def test_local_store_writes_no_temporary_files(tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    store = ArtifactStore(str(root))
    digest = store.put_bytes(b"payload")
    files = [p for p in root.rglob("*") if p.is_file()]
    assert files == [root / "sha256" / digest[:2] / digest]


def test_a_manifest_path_leaving_the_directory_is_refused(
    store: ArtifactStore, tmp_path: Path
) -> None:
    blob = store.put_bytes(b"payload")
    for rel in ("../escaped.txt", "a/../../escaped.txt", "/tmp/escaped-abs.txt"):
        manifest = {"kind": MANIFEST_KIND, "files": {rel: {"sha256": blob, "size": 7}}}
        crafted = store.put_bytes(json.dumps(manifest).encode())
        dest = tmp_path / "out" / "adapter"
        with pytest.raises(ArtifactIntegrityError, match="leaves its directory"):
            store.get_dir(crafted, dest)
        assert not dest.exists()
        assert not (tmp_path / "out" / "escaped.txt").exists()
        assert not (tmp_path / "escaped.txt").exists()
    assert not Path("/tmp/escaped-abs.txt").exists()
