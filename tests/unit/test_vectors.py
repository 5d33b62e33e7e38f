"""The VectorStore contract, run on both stores: the in-memory one and embedded Chroma.

Scores are cosine similarities on every backend; a ``where`` filter never lets a vector of
another partition through; deletes by id and by filter; a collection that does not exist
holds nothing and is not created by a query.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from genai.errors import ValidationError
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


def near(vector: np.ndarray, noise: float, seed: int = 99) -> np.ndarray:
    out = vector + noise * np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return out / np.linalg.norm(out)


@pytest.fixture(params=["memory", "chroma"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorStore]:
    if request.param == "memory":
        yield InMemoryVectorStore()
    else:
        yield ChromaVectorStore(tmp_path / "chroma")


def test_query_ranks_by_cosine_similarity(store: VectorStore) -> None:
    vectors = np.stack([unit(i) for i in range(5)])
    store.upsert("coll-a", [f"v{i}" for i in range(5)], vectors, [{"n": i} for i in range(5)])
    found = store.query("coll-a", near(vectors[3], 0.05), k=3)
    assert found[0].id == "v3"
    assert found[0].score == pytest.approx(float(near(vectors[3], 0.05) @ vectors[3]), abs=1e-3)
    assert [m.score for m in found] == sorted((m.score for m in found), reverse=True)
    assert found[0].metadata == {"n": 3}
    exact = store.query("coll-a", vectors[1], k=1)[0]
    assert exact.id == "v1" and exact.score == pytest.approx(1.0, abs=1e-4)
    # without metadata: the same ids and scores, and nothing read for them
    bare = store.query("coll-a", near(vectors[3], 0.05), k=3, metadata=False)
    assert [(m.id, round(m.score, 5)) for m in bare] == [(m.id, round(m.score, 5)) for m in found]
    assert all(m.metadata == {} for m in bare)


def test_upsert_replaces_vector_and_metadata(store: VectorStore) -> None:
    store.upsert("coll-a", ["x"], [unit(1)], [{"v": 1}])
    store.upsert("coll-a", ["x"], [unit(2)], [{"v": 2}])
    assert store.count("coll-a") == 1
    found = store.query("coll-a", unit(2), k=5)
    assert [(m.id, m.metadata) for m in found] == [("x", {"v": 2})]
    assert found[0].score == pytest.approx(1.0, abs=1e-4)


def test_a_partition_filter_never_returns_another_partition(store: VectorStore) -> None:
    shared = unit(7)
    store.upsert(
        "coll-a",
        ["a1", "b1", "b2"],
        [shared, shared, near(shared, 0.01)],
        [{"partition": "a"}, {"partition": "b"}, {"partition": "b"}],
    )
    only_a = store.query("coll-a", shared, k=5, where={"partition": "a"})
    assert [m.id for m in only_a] == ["a1"]
    assert {m.id for m in store.query("coll-a", shared, k=5, where={"partition": "b"})} == {
        "b1",
        "b2",
    }
    assert store.query("coll-a", shared, k=5, where={"partition": "c"}) == []
    assert store.count("coll-a", where={"partition": "b"}) == 2


def test_filters_on_several_keys_are_an_and(store: VectorStore) -> None:
    store.upsert(
        "coll-a",
        ["1", "2", "3"],
        [unit(1), unit(2), unit(3)],
        [{"p": "a", "d": "x"}, {"p": "a", "d": "y"}, {"p": "b", "d": "x"}],
    )
    found = store.query("coll-a", unit(1), k=5, where={"p": "a", "d": "x"})
    assert [m.id for m in found] == ["1"]


def test_collections_are_apart(store: VectorStore) -> None:
    store.upsert("coll-a", ["same-id"], [unit(1)], [{"owner": "a"}])
    store.upsert("coll-b", ["same-id"], [unit(2)], [{"owner": "b"}])
    assert store.query("coll-a", unit(2), k=5)[0].metadata == {"owner": "a"}
    store.drop("coll-b")
    assert store.count("coll-b") == 0
    assert store.count("coll-a") == 1


def test_collections_lists_existing_names_by_prefix(store: VectorStore) -> None:
    for name in ("cache-p2-x", "cache-p1-x", "kb-1-1"):
        store.upsert(name, ["v"], [unit(1)])
    store.query("cache-never-made", unit(1))  # a query creates nothing
    assert store.collections() == ["cache-p1-x", "cache-p2-x", "kb-1-1"]
    assert store.collections("cache-") == ["cache-p1-x", "cache-p2-x"]
    store.drop("cache-p1-x")
    assert store.collections("cache-") == ["cache-p2-x"]


def test_delete_by_ids_and_by_filter(store: VectorStore) -> None:
    store.upsert(
        "coll-a",
        ["1", "2", "3", "4"],
        [unit(i) for i in range(4)],
        [{"d": "x"}, {"d": "x"}, {"d": "y"}, {"d": "y"}],
    )
    store.delete("coll-a", ids=["1", "missing"])
    assert store.count("coll-a") == 3
    store.delete("coll-a", where={"d": "y"})
    assert [m.id for m in store.query("coll-a", unit(0), k=5)] == ["2"]
    with pytest.raises(ValidationError, match="needs ids or a where filter"):
        store.delete("coll-a")


def test_a_missing_collection_holds_nothing_and_is_not_created(store: VectorStore) -> None:
    assert store.query("never-made", unit(1), k=3) == []
    assert store.count("never-made") == 0
    store.delete("never-made", ids=["x"])
    store.drop("never-made")
    store.upsert("made", ["x"], [unit(1)])
    assert store.count("made") == 1


def test_names_a_backend_refuses_are_refused_everywhere(store: VectorStore) -> None:
    for bad in ("ab", "-leading", "has space", "a" * 600, "dots..twice"):
        with pytest.raises(ValidationError, match="collection name"):
            store.upsert(bad, ["x"], [unit(1)])


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
