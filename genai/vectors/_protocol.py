"""The ``VectorStore`` protocol: named collections of unit vectors with flat metadata.

A collection is the tenancy boundary (the semantic cache keeps one per AI Project, a
knowledge base one per base and version); inside it, ``where`` filters on metadata equality
narrow a query to a partition. Scores are cosine similarities (1.0: same direction), so
thresholds mean the same thing whichever backend holds the vectors.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from genai.errors import ValidationError

__all__ = [
    "MetadataValue",
    "VectorMatch",
    "VectorStore",
    "Where",
    "check_collection",
    "collection_name",
]

#: What a metadata value may be: flat scalars, which every backend can filter on.
MetadataValue = str | int | float | bool
#: An equality filter: every key must hold the given value (an AND of equalities).
Where = Mapping[str, MetadataValue]

_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{1,510}[a-zA-Z0-9]$")


@dataclass(frozen=True)
class VectorMatch:
    """One result of :meth:`VectorStore.query`."""

    id: str
    score: float  # cosine similarity, -1 to 1
    metadata: dict[str, MetadataValue] = field(default_factory=dict)


@runtime_checkable
class VectorStore(Protocol):
    """Collections of vectors with metadata, queried by cosine similarity.

    Vectors are float arrays of one dimension per collection (fixed by the first upsert).
    Implementations are safe to call from several threads. Heavy clients connect on first
    use or in ``warm()``, never in the constructor.
    """

    def upsert(
        self,
        collection: str,
        ids: Sequence[str],
        vectors: Any,
        metadatas: Sequence[Mapping[str, MetadataValue]] | None = None,
    ) -> None:
        """Add vectors, replacing those whose id exists already (vector and metadata)."""
        ...

    def query(
        self,
        collection: str,
        vector: Any,
        *,
        k: int = 5,
        where: Where | None = None,
        metadata: bool = True,
    ) -> list[VectorMatch]:
        """The ``k`` most similar vectors that match ``where``, best first. A collection
        that does not exist holds nothing: the answer is empty, and nothing is created.
        ``metadata=False`` leaves each match's metadata empty (a caller that needs only ids
        and scores saves reading it)."""
        ...

    def delete(
        self, collection: str, *, ids: Sequence[str] | None = None, where: Where | None = None
    ) -> None:
        """Delete the given ids, or every vector matching ``where`` (one of them is needed:
        :meth:`drop` removes a whole collection)."""
        ...

    def count(self, collection: str, *, where: Where | None = None) -> int: ...

    def drop(self, collection: str) -> None:
        """Remove a collection and everything in it (nothing happens if there is none)."""
        ...

    def collections(self, prefix: str = "") -> list[str]:
        """The names of the collections that exist and start with ``prefix``, sorted."""
        ...


def check_collection(name: str) -> str:
    """``name`` if every backend accepts it as a collection name (Chroma's rule: 3 to 512
    of ``[a-zA-Z0-9._-]``, starting and ending with a letter or digit)."""
    if not _NAME.match(name) or ".." in name:
        raise ValidationError(
            f"collection name {name!r} is not valid: use 3 to 512 letters, digits, '.', '_' "
            "or '-', starting and ending with a letter or digit (or build one with "
            "genai.vectors.collection_name)",
            field="collection",
        )
    return name


def collection_name(*parts: str | int) -> str:
    """A valid collection name made of ``parts`` (e.g. ``collection_name("cache", 12)`` is
    ``"cache-12"``). Characters a backend refuses become ``-``; a name that had to change
    or would be too long gets a hash suffix, so two different inputs never share a name."""
    raw = "-".join(str(p) for p in parts)
    safe = re.sub(r"[^a-zA-Z0-9._-]+", "-", raw).strip("._-")
    safe = re.sub(r"\.{2,}", ".", safe)
    if safe == raw and 3 <= len(safe) <= 200:
        return safe
    digest = hashlib.sha256(raw.encode()).hexdigest()[:12]
    return f"{safe[:180]}-{digest}".lstrip("._-") if safe else f"c-{digest}"
