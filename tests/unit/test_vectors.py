"""The VectorStore contract (``genai.testing.VectorStoreSuite``) on the in-memory store and
embedded Chroma, and what is particular to each: the memory store's partitions and sign-bit
pre-ranking, Chroma's errors, and ``create_vector_store``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from genai.errors import ValidationError
from genai.testing import VectorStoreSuite
from genai.vectors import (
    ChromaVectorStore,
    InMemoryVectorStore,
    VectorStore,
    check_collection,
    collection_name,
    create_vector_store,
)

DIM = 16


def unit(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return vector / np.linalg.norm(vector)


class TestInMemoryVectorStore(VectorStoreSuite):
    @pytest.fixture
    def store(self) -> VectorStore:
        return InMemoryVectorStore()


class TestEmbeddedChromaVectorStore(VectorStoreSuite):
    @pytest.fixture
    def store(self, tmp_path: Path) -> VectorStore:
        return ChromaVectorStore(tmp_path / "chroma")


def test_collection_name_makes_any_parts_safe() -> None:
    assert collection_name("genai-cache", "all-MiniLM-L6-v2", "p12") == (
        "genai-cache-all-MiniLM-L6-v2-p12"
    )
    odd = collection_name("cache", "/models/my model", "p1")
    assert check_collection(odd) == odd and "/" not in odd and " " not in odd
    assert collection_name("cache", "a b") != collection_name("cache", "a_b")
    assert len(collection_name("x" * 1000)) <= 512


def test_memory_store_checks_shapes() -> None:
    store = InMemoryVectorStore()
    store.upsert("coll-a", ["x"], [unit(1)])
    with pytest.raises(ValidationError, match="16-dimensional"):
        store.upsert("coll-a", ["y"], [np.ones(8, dtype=np.float32)])
    with pytest.raises(ValidationError, match="2 ids but 1 metadatas"):
        store.upsert("coll-a", ["y", "z"], [unit(2), unit(3)], [{}])
    with pytest.raises(ValidationError, match="finite"):
        store.upsert("coll-a", ["y"], [np.full(DIM, np.nan, dtype=np.float32)])


def test_memory_store_scans_only_the_queried_partition() -> None:
    """Rows are grouped by the index key, so a partition's query cost is its own size."""
    store = InMemoryVectorStore(index_key="partition")
    big = np.random.default_rng(0).standard_normal((5000, DIM)).astype(np.float32)
    store.upsert("coll-a", [f"b{i}" for i in range(5000)], big, [{"partition": "big"}] * 5000)
    store.upsert("coll-a", ["s1"], [unit(3)], [{"partition": "small"}])
    groups = store._collections["coll-a"].groups
    assert {key: len(g.ids) for key, g in groups.items()} == {"big": 5000, "small": 1}
    assert [m.id for m in store.query("coll-a", unit(3), k=5, where={"partition": "small"})] == [
        "s1"
    ]
    # deleting keeps the groups packed: the last row moves into the hole
    store.delete("coll-a", ids=["b0", "b4999", "b17"])
    group = groups["big"]
    assert len(group.ids) == 4997 and len(set(group.ids)) == 4997
    for index, vector_id in enumerate(group.ids[:50]):
        row = big[int(vector_id[1:])]
        assert np.allclose(group.matrix[index], row / np.linalg.norm(row), atol=1e-6)


def test_create_vector_store_follows_the_settings(tmp_path: Path) -> None:
    from genai import Settings
    from genai.errors import UnknownBackendError

    embedded = create_vector_store(Settings(home=tmp_path))
    assert isinstance(embedded, ChromaVectorStore) and str(tmp_path / "chroma") in repr(embedded)
    server = create_vector_store(Settings(home=tmp_path, chroma_url="http://127.0.0.1:9"))
    assert "127.0.0.1:9" in repr(server)
    assert isinstance(
        create_vector_store(Settings(home=tmp_path), backend="memory"), InMemoryVectorStore
    )
    with pytest.raises(UnknownBackendError, match="chroma, memory"):
        create_vector_store(Settings(home=tmp_path), backend="faiss")


def test_an_unreachable_chroma_server_is_a_backend_error() -> None:
    from genai.errors import BackendError

    store = ChromaVectorStore(url="http://127.0.0.1:9")
    with pytest.raises(BackendError, match="Chroma"):
        store.query("coll-a", unit(1))


def test_large_partitions_pre_rank_by_sign_bits_and_still_find_close_rows() -> None:
    """Above ``approximate_from`` rows a query scores only the rows whose sign bits are
    closest; every row a query is close to (cosine >= 0.8) must still come first, with the
    exact score, and deletes must keep the bits in step with the rows. 100 dimensions: two
    64-bit words of sign bits, the second one padded."""
    dim = 100
    rng = np.random.default_rng(7)
    centres = rng.standard_normal((50, dim)).astype(np.float32)
    rows = centres[rng.integers(0, 50, 6000)] + rng.standard_normal((6000, dim)).astype(np.float32)
    ids = [f"r{i}" for i in range(len(rows))]
    fast = InMemoryVectorStore(approximate_from=1000, candidates=64)
    exact = InMemoryVectorStore(approximate_from=None)
    for store in (fast, exact):
        store.upsert("col", ids, rows)
        store.delete("col", ids=ids[:500])  # moves rows (and their bits) into the holes
    checked = 0
    for i in rng.choice(np.arange(500, len(rows)), 200, replace=False):
        noise = rng.standard_normal(dim).astype(np.float32)
        query = rows[i] / np.linalg.norm(rows[i]) + 0.25 * noise / np.linalg.norm(noise)
        want = exact.query("col", query, k=1)[0]
        if want.score < 0.8:
            continue
        got = fast.query("col", query, k=1)[0]
        assert (got.id, round(got.score, 5)) == (want.id, round(want.score, 5))
        checked += 1
    assert checked > 150
    # below the limit the search is exact: a far query gets the true best row too
    far = rng.standard_normal(dim).astype(np.float32)
    small = InMemoryVectorStore(approximate_from=10_000)
    small.upsert("col", ids, rows)
    assert [m.id for m in small.query("col", far, k=3)] == exact_top(rows, ids, far, 3)


def exact_top(rows: np.ndarray, ids: list[str], query: np.ndarray, k: int) -> list[str]:
    normed = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    scores = normed @ (query / np.linalg.norm(query))
    order = np.argsort(-scores)[:k]
    return [ids[i] for i in order]
