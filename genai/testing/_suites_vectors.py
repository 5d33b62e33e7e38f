"""``VectorStoreSuite``: the :class:`~genai.vectors.VectorStore` contract, for any backend.

    class TestMyStore(VectorStoreSuite):
        @pytest.fixture
        def store(self, tmp_path):
            return MyStore(tmp_path)

Scores are cosine similarities on every backend; a ``where`` filter never lets a vector of
another partition through, and collections never see each other's vectors; deletes work by
id and by filter; a collection that does not exist holds nothing and is not created by a
query; names some backend would refuse are refused by all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from genai.errors import ValidationError
from genai.vectors._protocol import VectorStore

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["VectorStoreSuite"]

DIM = 16


def unit(seed: int) -> NDArray[np.float32]:
    """A random unit vector of :data:`DIM` dimensions, the same for the same seed."""
    import numpy as np

    vector = np.random.default_rng(seed).standard_normal(DIM)
    return np.asarray(vector / np.linalg.norm(vector), dtype=np.float32)


def near(vector: NDArray[np.float32], noise: float, seed: int = 99) -> NDArray[np.float32]:
    """``vector`` moved a little (``noise``) in a random direction, unit length again."""
    import numpy as np

    moved = vector + noise * np.random.default_rng(seed).standard_normal(DIM)
    return np.asarray(moved / np.linalg.norm(moved), dtype=np.float32)


class VectorStoreSuite:
    """Subclass it and provide the ``store`` fixture: an empty store of the backend."""

    @pytest.fixture
    def store(self) -> VectorStore:
        raise NotImplementedError("a subclass of VectorStoreSuite provides the `store` fixture")

    def test_it_keeps_the_protocol(self, store: VectorStore) -> None:
        assert isinstance(store, VectorStore)

    def test_query_ranks_by_cosine_similarity(self, store: VectorStore) -> None:
        import numpy as np

        vectors = np.stack([unit(i) for i in range(5)])
        store.upsert("coll-a", [f"v{i}" for i in range(5)], vectors, [{"n": i} for i in range(5)])
        probe = near(vectors[3], 0.05)
        found = store.query("coll-a", probe, k=3)
        assert len(found) == 3
        assert found[0].id == "v3"
        assert found[0].score == pytest.approx(float(probe @ vectors[3]), abs=1e-3)
        assert [m.score for m in found] == sorted((m.score for m in found), reverse=True)
        assert found[0].metadata == {"n": 3}
        exact = store.query("coll-a", vectors[1], k=1)[0]
        assert exact.id == "v1" and exact.score == pytest.approx(1.0, abs=1e-4)
        opposite = store.query("coll-a", -vectors[1], k=5)[-1]
        assert opposite.id == "v1" and opposite.score == pytest.approx(-1.0, abs=1e-4)

    def test_scores_do_not_depend_on_vector_length(self, store: VectorStore) -> None:
        store.upsert("coll-a", ["long", "short"], [unit(1) * 7.0, unit(2) * 0.1])
        assert store.query("coll-a", unit(1) * 0.5, k=1)[0].score == pytest.approx(1.0, abs=1e-4)
        assert store.query("coll-a", unit(2) * 3.0, k=1)[0].id == "short"

    def test_without_metadata_the_same_ids_and_scores(self, store: VectorStore) -> None:
        store.upsert("coll-a", ["a", "b", "c"], [unit(1), unit(2), unit(3)], [{"n": 1}] * 3)
        full = store.query("coll-a", unit(2), k=3)
        bare = store.query("coll-a", unit(2), k=3, metadata=False)
        assert [(m.id, round(m.score, 5)) for m in bare] == [
            (m.id, round(m.score, 5)) for m in full
        ]
        assert all(m.metadata == {} for m in bare)
        assert all(m.metadata == {"n": 1} for m in full)

    def test_k_bounds_the_answer(self, store: VectorStore) -> None:
        store.upsert("coll-a", [str(i) for i in range(6)], [unit(i) for i in range(6)])
        assert len(store.query("coll-a", unit(0), k=2)) == 2
        assert len(store.query("coll-a", unit(0), k=50)) == 6
        with pytest.raises(ValidationError):
            store.query("coll-a", unit(0), k=0)

    def test_upsert_replaces_vector_and_metadata(self, store: VectorStore) -> None:
        store.upsert("coll-a", ["x"], [unit(1)], [{"v": 1}])
        store.upsert("coll-a", ["x"], [unit(2)], [{"v": 2}])
        assert store.count("coll-a") == 1
        found = store.query("coll-a", unit(2), k=5)
        assert [(m.id, m.metadata) for m in found] == [("x", {"v": 2})]
        assert found[0].score == pytest.approx(1.0, abs=1e-4)

    def test_metadata_keeps_its_scalar_types(self, store: VectorStore) -> None:
        meta: dict[str, Any] = {"s": "text", "i": 7, "f": 0.5, "b": True}
        store.upsert("coll-a", ["x"], [unit(1)], [meta])
        assert store.query("coll-a", unit(1), k=1)[0].metadata == meta
        assert store.count("coll-a", where={"i": 7}) == 1
        assert store.count("coll-a", where={"b": True}) == 1
        assert store.count("coll-a", where={"s": "other"}) == 0

    def test_a_partition_filter_never_returns_another_partition(self, store: VectorStore) -> None:
        shared = unit(7)
        store.upsert(
            "coll-a",
            ["a1", "b1", "b2"],
            [shared, shared, near(shared, 0.01)],
            [{"partition": "a"}, {"partition": "b"}, {"partition": "b"}],
        )
        only_a = store.query("coll-a", shared, k=5, where={"partition": "a"})
        assert [m.id for m in only_a] == ["a1"]
        only_b = store.query("coll-a", shared, k=5, where={"partition": "b"})
        assert {m.id for m in only_b} == {"b1", "b2"}
        assert store.query("coll-a", shared, k=5, where={"partition": "c"}) == []
        assert store.count("coll-a", where={"partition": "b"}) == 2
        assert store.count("coll-a", where={"partition": "c"}) == 0

    def test_filters_on_several_keys_are_an_and(self, store: VectorStore) -> None:
        store.upsert(
            "coll-a",
            ["1", "2", "3"],
            [unit(1), unit(2), unit(3)],
            [{"p": "a", "d": "x"}, {"p": "a", "d": "y"}, {"p": "b", "d": "x"}],
        )
        found = store.query("coll-a", unit(1), k=5, where={"p": "a", "d": "x"})
        assert [m.id for m in found] == ["1"]
        assert store.count("coll-a", where={"p": "a", "d": "y"}) == 1

    def test_collections_are_apart(self, store: VectorStore) -> None:
        store.upsert("coll-a", ["same-id"], [unit(1)], [{"owner": "a"}])
        store.upsert("coll-b", ["same-id"], [unit(2)], [{"owner": "b"}])
        assert store.query("coll-a", unit(2), k=5)[0].metadata == {"owner": "a"}
        store.delete("coll-b", ids=["same-id"])
        assert store.count("coll-a") == 1
        store.upsert("coll-b", ["other"], [unit(3)])
        store.drop("coll-b")
        assert store.count("coll-b") == 0
        assert store.count("coll-a") == 1

    def test_collections_lists_existing_names_by_prefix(self, store: VectorStore) -> None:
        for name in ("cache-p2-x", "cache-p1-x", "kb-1-1"):
            store.upsert(name, ["v"], [unit(1)])
        store.query("cache-never-made", unit(1))  # a query creates nothing
        assert store.collections() == ["cache-p1-x", "cache-p2-x", "kb-1-1"]
        assert store.collections("cache-") == ["cache-p1-x", "cache-p2-x"]
        store.drop("cache-p1-x")
        assert store.collections("cache-") == ["cache-p2-x"]

    def test_delete_by_ids_and_by_filter(self, store: VectorStore) -> None:
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

    def test_a_missing_collection_holds_nothing_and_is_not_created(
        self, store: VectorStore
    ) -> None:
        assert store.query("never-made", unit(1), k=3) == []
        assert store.count("never-made") == 0
        assert store.count("never-made", where={"p": "a"}) == 0
        store.delete("never-made", ids=["x"])
        store.drop("never-made")
        assert store.collections() == []
        store.upsert("made", ["x"], [unit(1)])
        assert store.count("made") == 1

    @pytest.mark.parametrize("bad", ["ab", "-leading", "has space", "a" * 600, "dots..twice"])
    def test_names_a_backend_refuses_are_refused_everywhere(
        self, store: VectorStore, bad: str
    ) -> None:
        with pytest.raises(ValidationError, match="collection name"):
            store.upsert(bad, ["x"], [unit(1)])
        with pytest.raises(ValidationError, match="collection name"):
            store.query(bad, unit(1))
