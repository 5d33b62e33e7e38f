"""``InMemoryVectorStore``: exact cosine search with NumPy, indexed by one metadata key.

Rows are grouped by the value of ``index_key`` (the semantic cache's partition), each group
in one contiguous float32 matrix, so a query whose ``where`` names that key scans its
partition only: a lookup costs what its partition holds, not what the whole store holds.
Process-local and lost on exit: the reference implementation for tests and single-process
use. Exact up to ``approximate_from`` rows in a partition; from there on a query first
ranks the partition's rows by the Hamming distance of their sign bits (one bit per
dimension: 48 bytes for a 384-d row instead of 1,536, scanned several times faster) and
scores the best ``candidates`` of them exactly. A row the query is close to (cosine 0.8 is
an angle of 37°, so ~20% of sign bits differ, against ~45-50% for unrelated rows) is among
them; what it can miss are far rows a cache would never accept anyway.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from genai.errors import ValidationError
from genai.vectors._protocol import MetadataValue, VectorMatch, Where, check_collection

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["InMemoryVectorStore"]


#: Rows in one partition from which a query pre-ranks rows by their sign bits.
APPROXIMATE_FROM = 20_000
#: Rows scored exactly after the sign-bit pre-ranking (at least 8x the ``k`` asked).
CANDIDATES = 512


@dataclass
class _Group:
    """The rows sharing one value of the index key, packed at the front of ``matrix``, and
    their sign bits (``bits``: one row per 64-bit word of a vector, one column per row of
    ``matrix`` — word by word, each a contiguous run that NumPy scans ~5x faster than the
    same words row by row)."""

    matrix: NDArray[np.float32]
    bits: NDArray[np.uint64]
    ids: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.ids)


@dataclass
class _Collection:
    dimension: int | None = None
    groups: dict[MetadataValue | None, _Group] = field(default_factory=dict)
    where_is: dict[str, tuple[MetadataValue | None, int]] = field(default_factory=dict)
    metadata: dict[str, dict[str, MetadataValue]] = field(default_factory=dict)


class InMemoryVectorStore:
    """Cosine search over in-process NumPy matrices, one per partition (exact below
    ``approximate_from`` rows in a partition; None keeps it exact at any size).

    ``index_key`` names the metadata key whose value partitions a collection; queries and
    counts filtered on it touch that partition only. Thread-safe.
    """

    def __init__(
        self,
        *,
        index_key: str = "partition",
        approximate_from: int | None = APPROXIMATE_FROM,
        candidates: int = CANDIDATES,
    ) -> None:
        if candidates < 1:
            raise ValidationError(f"candidates must be at least 1, not {candidates}")
        self._index_key = index_key
        self._approximate_from = approximate_from
        self._candidates = candidates
        self._collections: dict[str, _Collection] = {}
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"InMemoryVectorStore({len(self._collections)} collections)"

    # ------------------------------------------------------------ writes

    def upsert(
        self,
        collection: str,
        ids: Sequence[str],
        vectors: Any,
        metadatas: Sequence[Mapping[str, MetadataValue]] | None = None,
    ) -> None:
        import numpy as np

        check_collection(collection)
        rows = _as_matrix(vectors, len(ids))
        metas = [dict(m) for m in metadatas] if metadatas is not None else [{} for _ in ids]
        if len(metas) != len(ids):
            raise ValidationError(
                f"{len(ids)} ids but {len(metas)} metadatas: give one metadata per id",
                field="metadatas",
            )
        norms = np.linalg.norm(rows, axis=1, keepdims=True)
        rows = (rows / np.where(norms == 0, 1.0, norms)).astype(np.float32)
        with self._lock:
            coll = self._collections.setdefault(collection, _Collection())
            if coll.dimension is None:
                coll.dimension = rows.shape[1]
            elif rows.shape[1] != coll.dimension:
                raise ValidationError(
                    f"collection {collection!r} holds {coll.dimension}-dimensional vectors, "
                    f"not {rows.shape[1]}: use one embedding model per collection",
                    field="vectors",
                )
            for vector_id, row, meta in zip(ids, rows, metas, strict=True):
                self._remove(coll, vector_id)
                self._append(coll, vector_id, row, meta)

    def delete(
        self, collection: str, *, ids: Sequence[str] | None = None, where: Where | None = None
    ) -> None:
        if ids is None and not where:
            raise ValidationError(
                "delete needs ids or a where filter; drop() removes a whole collection",
                field="where",
            )
        with self._lock:
            coll = self._collections.get(check_collection(collection))
            if coll is None:
                return
            chosen = list(ids) if ids is not None else list(coll.metadata)
            for vector_id in chosen:
                meta = coll.metadata.get(vector_id)
                if meta is not None and _matches(meta, where):
                    self._remove(coll, vector_id)

    def drop(self, collection: str) -> None:
        with self._lock:
            self._collections.pop(check_collection(collection), None)

    def collections(self, prefix: str = "") -> list[str]:
        with self._lock:
            return sorted(name for name in self._collections if name.startswith(prefix))

    # ------------------------------------------------------------ reads

    def query(
        self,
        collection: str,
        vector: Any,
        *,
        k: int = 5,
        where: Where | None = None,
        metadata: bool = True,
    ) -> list[VectorMatch]:
        import numpy as np

        if k < 1:
            raise ValidationError(f"k must be at least 1, not {k}", field="k")
        query = _as_matrix(vector, 1)[0]
        norm = float(np.linalg.norm(query))
        with self._lock:
            coll = self._collections.get(check_collection(collection))
            if coll is None or coll.dimension is None:
                return []
            if query.shape[0] != coll.dimension:
                raise ValidationError(
                    f"the query has {query.shape[0]} dimensions; collection {collection!r} "
                    f"holds {coll.dimension}-dimensional vectors",
                    field="vector",
                )
            query = query / (norm or 1.0)
            found: list[tuple[float, str]] = []
            for group in self._groups_for(coll, where):
                found.extend(self._search(coll, group, query, k, where))
            found.sort(key=lambda pair: -pair[0])
            return [
                VectorMatch(i, s, dict(coll.metadata[i]) if metadata else {}) for s, i in found[:k]
            ]

    def count(self, collection: str, *, where: Where | None = None) -> int:
        with self._lock:
            coll = self._collections.get(check_collection(collection))
            if coll is None:
                return 0
            if not where:
                return len(coll.metadata)
            return sum(
                sum(_matches(coll.metadata[i], where) for i in group.ids)
                for group in self._groups_for(coll, where)
            )

    # ------------------------------------------------------------ internals

    def _groups_for(self, coll: _Collection, where: Where | None) -> list[_Group]:
        if where and self._index_key in where:
            group = coll.groups.get(where[self._index_key])
            return [group] if group is not None else []
        return list(coll.groups.values())

    def _search(
        self,
        coll: _Collection,
        group: _Group,
        query: NDArray[np.float32],
        k: int,
        where: Where | None,
    ) -> list[tuple[float, str]]:
        import numpy as np

        if group.size == 0:
            return []
        extra = {key: v for key, v in (where or {}).items() if key != self._index_key}
        rows: NDArray[np.intp] | None = None
        wanted = max(self._candidates, 8 * k)
        limit = self._approximate_from
        if limit is not None and group.size >= limit and wanted < group.size and not extra:
            probe = _sign_bits(query[None, :])[0]
            differ = np.bitwise_count(group.bits[:, : group.size] ^ probe[:, None])
            distance = np.add.reduce(differ, axis=0, dtype=np.uint16)
            rows = np.argpartition(distance, wanted - 1)[:wanted]
            scores = group.matrix[rows] @ query
        else:
            scores = group.matrix[: group.size] @ query
        if extra:  # filters beyond the index key: checked row by row (rare)
            keep = np.fromiter((_matches(coll.metadata[i], extra) for i in group.ids), dtype=bool)
            scores = np.where(keep, scores, -np.inf)
        top = min(k, scores.shape[0])
        best = np.argpartition(-scores, top - 1)[:top] if top < scores.shape[0] else np.arange(top)
        found = best if rows is None else rows[best]
        return [
            (float(scores[b]), group.ids[i])
            for b, i in zip(best, found, strict=True)
            if np.isfinite(scores[b])
        ]

    def _append(
        self, coll: _Collection, vector_id: str, row: NDArray[np.float32], meta: dict[str, Any]
    ) -> None:
        import numpy as np

        key = meta.get(self._index_key)
        group = coll.groups.get(key)
        bits = _sign_bits(row[None, :])[0]
        if group is None:
            group = coll.groups[key] = _Group(
                np.empty((8, row.shape[0]), dtype=np.float32),
                np.empty((bits.shape[0], 8), dtype=np.uint64),
            )
        if group.size == group.matrix.shape[0]:  # grow by doubling: amortised O(1) appends
            grown = np.empty((group.size * 2, row.shape[0]), dtype=np.float32)
            grown[: group.size] = group.matrix[: group.size]
            group.matrix = grown
            grown_bits = np.empty((bits.shape[0], group.size * 2), dtype=np.uint64)
            grown_bits[:, : group.size] = group.bits[:, : group.size]
            group.bits = grown_bits
        group.matrix[group.size] = row
        group.bits[:, group.size] = bits
        coll.where_is[vector_id] = (key, group.size)
        group.ids.append(vector_id)
        coll.metadata[vector_id] = meta

    def _remove(self, coll: _Collection, vector_id: str) -> None:
        """Delete in O(1): the group's last row moves into the hole."""
        place = coll.where_is.pop(vector_id, None)
        if place is None:
            return
        key, index = place
        group = coll.groups[key]
        last = group.size - 1
        if index != last:
            moved = group.ids[last]
            group.matrix[index] = group.matrix[last]
            group.bits[:, index] = group.bits[:, last]
            group.ids[index] = moved
            coll.where_is[moved] = (key, index)
        group.ids.pop()
        del coll.metadata[vector_id]
        if not group.ids:
            del coll.groups[key]


def _sign_bits(rows: NDArray[np.float32]) -> NDArray[np.uint64]:
    """Each row's signs, one bit per dimension, in 64-bit words (the last one padded)."""
    import numpy as np

    packed = np.packbits(rows > 0, axis=1)
    pad = -packed.shape[1] % 8
    if pad:
        packed = np.pad(packed, ((0, 0), (0, pad)))
    return np.ascontiguousarray(packed).view(np.uint64)


def _as_matrix(vectors: Any, rows: int) -> NDArray[np.float32]:
    import numpy as np

    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim == 1:
        matrix = matrix[None, :]
    if matrix.ndim != 2 or matrix.shape[0] != rows or matrix.shape[1] == 0:
        raise ValidationError(
            f"expected {rows} vector(s) of one dimension, got an array of shape {matrix.shape}",
            field="vectors",
        )
    if not np.isfinite(matrix).all():
        raise ValidationError("vectors must be finite (no NaN or infinity)", field="vectors")
    return matrix


def _matches(meta: Mapping[str, MetadataValue], where: Where | None) -> bool:
    return not where or all(meta.get(key) == value for key, value in where.items())
