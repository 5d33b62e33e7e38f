"""``SemanticCache``: an exact tier and a semantic tier, both inside one partition.

    cache = SemanticCache(InMemoryVectorStore(), embedder)
    part = Partition(project_id=1, deployment="support-bot")
    cache.store(part, "How do I open an account?", "Go to Settings → Accounts → Open.")
    cache.lookup(part, "how can I open an account")          # CacheHit(tier="semantic")
    cache.lookup(part, "How do I close an account?")          # None: another question

A lookup tries the exact tier (a hash of the normalised request) and then the semantic
tier: the ``top_k`` nearest cached questions *of the same scope* (partition + conversation
context, see ``cache/_keys.py``), of which the best must

1. score at least ``threshold`` (cosine similarity);
2. pass the ``verifier`` (negation, antonyms, numbers, names: see ``cache/_verify.py``);
3. lead every other candidate by ``margin`` — when two cached questions fit the new one
   about equally well, the embedding cannot tell which was asked, and a miss is cheaper
   than a wrong answer. Candidates the verifier rejected count as rivals too: a close
   question that asks something else is a sign the embedding is unsure here;
4. with a ``pair_verifier`` (the trained cross-encoder, ``cache/_pair.py``), be judged the
   same question by it, read through the project's error bound (``max_error``, see
   ``cache/_judge.py`` and ``cache/_bound.py``). It only ever turns a hit into a miss.

Ranking adds ``lexical_weight`` × the share of words the questions have in common to the
cosine: between near-duplicate cached questions, the one worded like the new question wins.

Where the vectors are searched: a scope with fewer than ``index_after`` entries (a
conversation, a DLP session, a rarely used prompt) is searched from its rows (each keeps its
embedding), with NumPy; a busier scope gets a vector-store collection of its own, queried
without a metadata filter. Chroma's filters scan every matching row (tens of milliseconds
even for a handful of rows), and a collection per conversation would fill the disk; so
neither a filter nor a collection is used where the other one is cheaper. A collection is
named ``<collection_prefix>-p<project id>-<model>-<scope>``; one whose project holds no
entry any more (a deleted project's entries go with it, the database cascades) is dropped by
the purge that also removes expired entries (every minute, on a store), or at once by
:meth:`SemanticCache.purge_orphaned_collections`.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

from cache._bound import BoundStats, ErrorBound
from cache._entries import CacheStats, Entry, EntryStore, MemoryEntries
from cache._judge import PairJudge, PairScorer, check_max_error
from cache._keys import ChatRequest, Partition, RequestKey, request_key
from cache._verify import LexicalVerifier, Verifier
from genai.errors import ValidationError
from genai.vectors import VectorStore, collection_name

if TYPE_CHECKING:
    from genai.models import Embedder
    from genai.store import Store

__all__ = [
    "DEFAULT_MARGIN",
    "DEFAULT_THRESHOLD",
    "CacheHit",
    "SemanticCache",
]

#: Cosine similarity a cached question needs (all-MiniLM-L6-v2; ``genai cache calibrate``
#: picks one for another model or another precision).
DEFAULT_THRESHOLD = 0.80
#: How far the best candidate must lead the next one.
DEFAULT_MARGIN = 0.015
DEFAULT_LEXICAL_WEIGHT = 0.1
DEFAULT_TTL_S = 7 * 24 * 3600.0
DEFAULT_MAX_ENTRIES = 100_000
_PURGE_EVERY_S = 60.0
#: Scopes remembered as having a collection (one forgotten is looked up again on a store).
_MAX_INDEXED = 10_000
_WORDS = re.compile(r"\w+")
#: A collection prefix that no name mangling changes (the project id follows it).
_PREFIX = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_-]{0,63}")


@lru_cache(maxsize=1024)
def _word_set(text: str) -> frozenset[str]:
    """A question's words, for ranking near-duplicates (kept for the 1024 texts seen last,
    ~1.5 KiB each: a cached question is ranked again on every lookup near it)."""
    return frozenset(_WORDS.findall(text))


@dataclass(frozen=True)
class CacheHit:
    """A cached answer for a request."""

    answer: Any  # what was stored: a str, or a whole OpenAI response body
    entry_id: str
    tier: Literal["exact", "semantic"]
    score: float  # 1.0 for the exact tier, the cosine similarity for the semantic one
    tokens: int = 0  # what the original answer cost, now saved
    cost_usd: float = 0.0
    verifier_score: float | None = None  # the pair verifier's, when it judged the hit
    estimated_error: float | None = None  # the bound's P(wrong) for it, then


class SemanticCache:
    """The tenant-safe semantic cache; usable on its own, and behind the gateway.

    ``store`` (the platform's metadata store) keeps entries and counters in SQL, shared by
    every process; without it they live in this process. ``ttl_s`` and ``max_entries``
    (per project, least recently used first) bound what is kept; None means no bound.
    ``pair_verifier`` (e.g. :class:`cache.PairVerifier`) judges each semantic hit after the
    lexical ``verifier``; its scores are read through ``error_bound`` (by default the
    calibration shipped with the verifier), per project.
    Thread-safe; the ``a*`` methods run the same calls in a worker thread.
    """

    def __init__(
        self,
        vectors: VectorStore,
        embedder: Embedder,
        *,
        store: Store | None = None,
        threshold: float = DEFAULT_THRESHOLD,
        margin: float = DEFAULT_MARGIN,
        lexical_weight: float = DEFAULT_LEXICAL_WEIGHT,
        top_k: int = 5,
        ttl_s: float | None = DEFAULT_TTL_S,
        max_entries: int | None = DEFAULT_MAX_ENTRIES,
        verifier: Verifier | None = LexicalVerifier(),
        pair_verifier: PairScorer | None = None,
        error_bound: ErrorBound | None = None,
        max_question_chars: int = 1000,
        index_after: int = 32,
        collection_prefix: str = "genai-cache",
        clock: Callable[[], float] = time.time,
    ) -> None:
        _check_threshold(threshold)
        if not _PREFIX.fullmatch(collection_prefix):
            raise ValidationError(
                f"collection_prefix {collection_prefix!r} is not valid: use 1 to 64 letters, "
                "digits, '_' or '-', starting with a letter or digit (e.g. 'genai-cache')",
                field="collection_prefix",
            )
        if margin < 0 or top_k < 1 or index_after < 1:
            raise ValidationError(
                "margin must be >= 0, top_k and index_after >= 1 (got "
                f"margin={margin}, top_k={top_k}, index_after={index_after})",
                field="margin",
            )
        if ttl_s is not None and ttl_s <= 0:
            raise ValidationError(f"ttl_s must be positive or None, not {ttl_s}", field="ttl_s")
        if max_entries is not None and max_entries < 1:
            raise ValidationError(
                f"max_entries must be at least 1 or None, not {max_entries}", field="max_entries"
            )
        self.vectors = vectors
        self.embedder = embedder
        self.threshold = threshold
        self.margin = margin
        self.lexical_weight = lexical_weight
        self.top_k = top_k
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.verifier = verifier
        self.judge = PairJudge(pair_verifier, error_bound) if pair_verifier is not None else None
        self.max_question_chars = max_question_chars
        self.index_after = index_after
        self._prefix = collection_prefix
        self._own = re.compile(rf"{re.escape(collection_prefix)}-p(\d+)-")
        self._model = embedder.model_name
        self._clock = clock
        self._entries: EntryStore
        if store is None:
            self._entries = MemoryEntries()
        else:
            from cache._sql import SqlEntries

            self._entries = SqlEntries(store)
        # scopes known to have a collection, oldest first
        self._indexed: dict[tuple[int, str], None] = {}
        self._last_purge = clock()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"SemanticCache(threshold={self.threshold}, margin={self.margin}, "
            f"vectors={self.vectors!r}, entries={type(self._entries).__name__})"
        )

    # ------------------------------------------------------------ keys

    def key(
        self, partition: Partition, request: ChatRequest, *, session: str | None = None
    ) -> RequestKey:
        """How ``request`` is keyed in ``partition`` (see ``cache/_keys.py``)."""
        return request_key(
            partition, request, session=session, max_question_chars=self.max_question_chars
        )

    def embed(self, text: str) -> Any:
        """The vector the semantic tier compares for ``text``."""
        return self.embedder.embed([text])[0]

    def collection(self, project_id: int, scope: str) -> str:
        """The vector collection of one busy scope (and one embedding model)."""
        return collection_name(self._prefix, f"p{project_id}", self._model, scope[:24])

    # ------------------------------------------------------------ lookup and store

    def lookup(
        self,
        partition: Partition,
        request: ChatRequest,
        *,
        embedding: Any = None,
        session: str | None = None,
        request_id: str = "",
        threshold: float | None = None,
        key: RequestKey | None = None,
        max_error: float | None = None,
        use_verifier: bool = True,
    ) -> CacheHit | None:
        """The cached answer for ``request`` in ``partition``, or None.

        ``embedding`` saves embedding the question again when the caller has it;
        ``request_id`` lets feedback on this answer find the entry (:meth:`feedback`);
        ``threshold`` overrides the cache's for this lookup (a project's own setting);
        ``max_error`` is the project's bound on P(wrong) for a semantic hit (it needs the
        pair verifier); ``use_verifier=False`` skips the pair verifier (rules only).
        """
        if threshold is not None:
            _check_threshold(threshold)
        check_max_error(max_error)
        if max_error is not None and (self.judge is None or not use_verifier):
            raise ValidationError(
                "max_error needs the pair verifier: build the cache with "
                "pair_verifier=cache.PairVerifier() and leave the project's verifier on",
                field="max_error",
            )
        key = key or self.key(partition, request, session=session)
        project = partition.project_id
        now = self._clock()
        hit = self._exact(project, key, now)
        if hit is None and key.question is not None:
            vector = embedding if embedding is not None else self.embed(key.question)
            judge = self.judge if use_verifier else None
            choice = self._semantic(project, key, vector, now, threshold or self.threshold)
            if choice is not None and judge is not None:
                choice = _judged(choice, judge, project, request_id, key.question, max_error)
            hit = choice[0] if choice is not None else None
        counts: dict[str, float] = {"lookups": 1}
        if hit is not None:
            counts[f"{hit.tier}_hits"] = 1
            counts["tokens_saved"] = hit.tokens
            counts["cost_saved_usd"] = hit.cost_usd
        self._entries.record(
            project,
            partition.deployment,
            counts,
            hit=(hit.entry_id, request_id) if hit is not None else None,
            at=now,
        )
        return hit

    def store(
        self,
        partition: Partition,
        request: ChatRequest,
        answer: Any,
        *,
        embedding: Any = None,
        session: str | None = None,
        request_id: str = "",
        tokens: int = 0,
        cost_usd: float = 0.0,
        ttl_s: float | None = None,
        key: RequestKey | None = None,
    ) -> str:
        """Keep ``answer`` for ``request``; the entry's id. Storing the same request again
        replaces its answer. ``tokens`` and ``cost_usd`` are what the answer cost (what a
        hit on it saves)."""
        key = key or self.key(partition, request, session=session)
        now = self._clock()
        vector = None
        if key.question is not None:
            vector = _as_vector(embedding if embedding is not None else self.embed(key.question))
        ttl = ttl_s if ttl_s is not None else self.ttl_s
        entry = self._entries.put(
            Entry(
                id=uuid.uuid4().hex,
                project_id=partition.project_id,
                exact_key=key.exact,
                scope=key.scope,
                deployment=partition.deployment,
                answer=answer,
                question=key.question,
                vector=vector.tobytes() if vector is not None else None,
                adapter=partition.adapter,
                prompt_version=partition.prompt_version,
                params=_short(partition.params),
                kb_version=partition.kb_version,
                revision=partition.revision,
                request_id=request_id,
                tokens=int(tokens),
                cost_usd=float(cost_usd),
                created_at=now,
                expires_at=now + ttl if ttl is not None else None,
            )
        )
        if vector is not None:
            self._index(partition, key.scope, entry.id, vector)
        self._entries.record(partition.project_id, partition.deployment, {"stores": 1})
        if self.max_entries is not None:
            trimmed = self._entries.trim(partition.project_id, self.max_entries)
            self._forget_vectors(partition.project_id, trimmed)
            if trimmed:
                self._entries.record(
                    partition.project_id, partition.deployment, {"evictions": len(trimmed)}
                )
        self._maybe_purge(now)
        return entry.id

    # ------------------------------------------------------------ invalidation

    def invalidate(
        self,
        project_id: int,
        deployment: str | None = None,
        *,
        adapter: str | None = None,
        prompt_version: str | None = None,
        kb_version: str | None = None,
    ) -> int:
        """Delete a project's entries: all of them, or those of one deployment (and
        adapter, prompt version, knowledge-base version). How many were deleted.

        A partition whose version changed needs no call: its new version is a new
        partition, and the old entries age out (TTL, least recently used first)."""
        filters = {
            name: value
            for name, value in (
                ("deployment", deployment),
                ("adapter", adapter),
                ("prompt_version", prompt_version),
                ("kb_version", kb_version),
            )
            if value is not None
        }
        if filters and "deployment" not in filters:
            raise ValidationError(
                "name the deployment whose adapter, prompt or knowledge-base version to invalidate",
                field="deployment",
            )
        gone = self._entries.delete_where(project_id, filters)
        # a scope lies inside one partition: its entries all went, so its collection goes
        for scope in {scope for _, scope in gone}:
            self._drop(project_id, scope)
        if gone:
            self._entries.record(project_id, deployment or "", {"evictions": len(gone)})
        return len(gone)

    def evict(self, entry_id: str, *, project_id: int) -> bool:
        """Delete one entry (e.g. an answer reported wrong); whether it existed."""
        gone = self._entries.delete(project_id, [entry_id])
        self._forget_vectors(project_id, gone)
        return bool(gone)

    def feedback(self, project_id: int, request_id: str, *, wrong: bool = True) -> int:
        """A caller's verdict on the answer to ``request_id``: when it was wrong, the
        entry that answered it (or that the request created) is evicted and counted as a
        false hit. How many entries were evicted."""
        if not wrong:
            return 0
        entries = self._entries.for_request(project_id, request_id)
        gone = self._entries.delete(project_id, [e.id for e in entries])
        self._forget_vectors(project_id, gone)
        for entry in entries:
            self._entries.record(project_id, entry.deployment, {"false_hits": 1, "evictions": 1})
        if self.judge is not None:
            self.judge.feedback(project_id, request_id)
        if entries:
            self._entries.flush()  # rare, and what `genai cache stats` is read for
        return len(gone)

    def stats(self, project_id: int) -> CacheStats:
        """Hit rate, tokens and cost saved, false hits and entries of one project."""
        self._entries.flush()
        return self._entries.stats(project_id)

    def bound_stats(self, project_id: int) -> BoundStats | None:
        """The semantic hits the pair verifier judged in this process: how many, their mean
        estimated error, how many feedback called wrong (None: no pair verifier)."""
        return self.judge.stats(project_id) if self.judge is not None else None

    def flush(self) -> None:
        """Write buffered counters now (they are written every second otherwise)."""
        self._entries.flush()

    def close(self) -> None:
        self._entries.close()

    # ------------------------------------------------------------ async

    async def alookup(
        self, partition: Partition, request: ChatRequest, **options: Any
    ) -> CacheHit | None:
        return await asyncio.to_thread(lambda: self.lookup(partition, request, **options))

    async def astore(
        self, partition: Partition, request: ChatRequest, answer: Any, **options: Any
    ) -> str:
        return await asyncio.to_thread(lambda: self.store(partition, request, answer, **options))

    async def ainvalidate(self, project_id: int, deployment: str | None = None, **kw: Any) -> int:
        return await asyncio.to_thread(lambda: self.invalidate(project_id, deployment, **kw))

    async def aevict(self, entry_id: str, *, project_id: int) -> bool:
        return await asyncio.to_thread(lambda: self.evict(entry_id, project_id=project_id))

    async def afeedback(self, project_id: int, request_id: str, *, wrong: bool = True) -> int:
        return await asyncio.to_thread(lambda: self.feedback(project_id, request_id, wrong=wrong))

    async def astats(self, project_id: int) -> CacheStats:
        return await asyncio.to_thread(self.stats, project_id)

    # ------------------------------------------------------------ internals

    def _exact(self, project: int, key: RequestKey, now: float) -> CacheHit | None:
        entry = self._entries.exact(project, key.exact)
        if entry is None:
            return None
        if entry.expired(now):
            self.evict(entry.id, project_id=project)
            return None
        return CacheHit(entry.answer, entry.id, "exact", 1.0, entry.tokens, entry.cost_usd)

    def _semantic(
        self, project: int, key: RequestKey, vector: Any, now: float, threshold: float
    ) -> tuple[CacheHit, str] | None:
        assert key.question is not None
        query = _as_vector(vector)
        matches = self.vectors.query(
            self.collection(project, key.scope), query, k=self.top_k, metadata=False
        )
        if matches:
            if matches[0].score < threshold:
                return None
            found = self._entries.fetch(project, [m.id for m in matches])
            scored = [(m.score, found[m.id]) for m in matches if m.id in found]
            missing = [m.id for m in matches if m.id not in found]
            if missing:  # rows another process deleted: their vectors go too
                self._forget_vectors(project, [(i, key.scope) for i in missing])
        else:
            scored = self._scan(project, key.scope, query)
        live = [(score, entry) for score, entry in scored if not entry.expired(now)]
        expired = [entry.id for _, entry in scored if entry.expired(now)]
        if expired:
            self._forget_vectors(project, self._entries.delete(project, expired))
        return self._choose(key.question, live, threshold)

    def _scan(self, project: int, scope: str, query: Any) -> list[tuple[float, Entry]]:
        """The ``top_k`` most similar entries of a small scope, from its rows."""
        import numpy as np

        rows = [
            e for e in self._entries.scope_rows(project, scope, 4 * self.index_after) if e.vector
        ]
        rows = [e for e in rows if len(e.vector or b"") == query.nbytes]
        if not rows:
            return []
        matrix = np.frombuffer(b"".join(e.vector or b"" for e in rows), dtype=np.float32)
        scores = matrix.reshape(len(rows), -1) @ query
        best = np.argsort(-scores)[: self.top_k]
        return [(float(scores[i]), rows[i]) for i in best]

    def _choose(
        self, question: str, candidates: Sequence[tuple[float, Entry]], threshold: float
    ) -> tuple[CacheHit, str] | None:
        words = _word_set(question)
        ranked = []
        for score, entry in candidates:
            if entry.question is None:
                continue
            overlap = 0.0
            if self.lexical_weight:
                theirs = _word_set(entry.question)
                overlap = len(words & theirs) / max(1, len(words | theirs))
            ranked.append((score + self.lexical_weight * overlap, score, entry))
        ranked.sort(key=lambda r: -r[0])
        best = None
        for rank, score, entry in ranked:
            if score < threshold:
                continue
            assert entry.question is not None
            if self.verifier is None or self.verifier.reject(question, entry.question) is None:
                best = (rank, score, entry)
                break
        if best is None:
            return None
        rivals = [r[0] for r in ranked if r[2].id != best[2].id]
        if rivals and best[0] - max(rivals) < self.margin:
            return None  # two cached questions fit about equally well: not sure which
        entry = best[2]
        hit = CacheHit(entry.answer, entry.id, "semantic", best[1], entry.tokens, entry.cost_usd)
        return hit, entry.question or ""

    def _index(self, partition: Partition, scope: str, entry_id: str, vector: Any) -> None:
        """Add a vector to its scope's collection once the scope is busy enough to have one
        (the whole scope is indexed when it crosses ``index_after``)."""
        project = partition.project_id
        name = self.collection(project, scope)
        meta = {"deployment": partition.deployment}
        if (project, scope) not in self._indexed:
            count = self._entries.count_scope(project, scope)
            if count < self.index_after:
                return
            if self.vectors.count(name) + 1 < count:
                rows = self._entries.scope_rows(project, scope, max(count, 1) * 2)
                rows = [e for e in rows if e.vector and e.id != entry_id]
                for start in range(0, len(rows), 1000):
                    part = rows[start : start + 1000]
                    self.vectors.upsert(
                        name,
                        [e.id for e in part],
                        [_from_bytes(e.vector or b"") for e in part],
                        [meta] * len(part),
                    )
            with self._lock:
                self._indexed[(project, scope)] = None
                while len(self._indexed) > _MAX_INDEXED:
                    self._indexed.pop(next(iter(self._indexed)))
        self.vectors.upsert(name, [entry_id], [vector], [meta])

    def _forget_vectors(self, project_id: int, gone: Sequence[tuple[str, str]]) -> None:
        by_scope: dict[str, list[str]] = {}
        for entry_id, scope in gone:
            by_scope.setdefault(scope, []).append(entry_id)
        for scope, ids in by_scope.items():
            name = self.collection(project_id, scope)
            for start in range(0, len(ids), 5000):
                self.vectors.delete(name, ids=ids[start : start + 5000])
            if self.vectors.count(name) == 0:  # nothing left: no empty collection lingers
                self._drop(project_id, scope)

    def _drop(self, project_id: int, scope: str) -> None:
        with self._lock:
            self._indexed.pop((project_id, scope), None)
        self.vectors.drop(self.collection(project_id, scope))

    def _maybe_purge(self, now: float) -> None:
        if now - self._last_purge < _PURGE_EVERY_S or not self._lock.acquire(blocking=False):
            return
        try:
            self._last_purge = now
        finally:
            self._lock.release()
        by_project: dict[int, list[tuple[str, str]]] = {}
        for project_id, entry_id, scope in self._entries.purge_expired(now):
            by_project.setdefault(project_id, []).append((entry_id, scope))
        for project_id, gone in by_project.items():
            self._forget_vectors(project_id, gone)
        self.purge_orphaned_collections()

    def purge_orphaned_collections(self) -> list[str]:
        """Drop this cache's vector collections whose project holds no entry any more (the
        names dropped). Deleting a project deletes its entries in the database, which
        cannot reach the vector store; its vectors would stay without this.

        Collections are listed before the projects are read: one that a store creates
        meanwhile belongs to a project whose entries are in the database already, so it
        stays."""
        names = self.vectors.collections(f"{self._prefix}-p")
        if not names:
            return []
        live = self._entries.projects()
        dropped = []
        for name in names:
            own = self._own.match(name)
            if own is None or int(own.group(1)) in live:
                continue
            self.vectors.drop(name)
            dropped.append(name)
        if dropped:
            with self._lock:
                self._indexed = {(p, s): None for p, s in self._indexed if p in live}
        return dropped


def _judged(
    choice: tuple[CacheHit, str],
    judge: PairJudge,
    project: int,
    request_id: str,
    question: str,
    max_error: float | None,
) -> tuple[CacheHit, str] | None:
    """The rules' choice, if the pair verifier (through the bound) lets it stand."""
    hit, cached = choice
    verdict = judge.judge(project, request_id, question, cached, max_error=max_error)
    if not verdict.accept:
        return None
    judged = replace(hit, verifier_score=verdict.score, estimated_error=verdict.estimated_error)
    return judged, cached


def _as_vector(vector: Any) -> Any:
    import numpy as np

    row = np.asarray(vector, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(row))
    return row / norm if norm else row


def _from_bytes(raw: bytes) -> Any:
    import numpy as np

    return np.frombuffer(raw, dtype=np.float32)


def _check_threshold(threshold: float) -> None:
    if not 0 < threshold <= 1:
        raise ValidationError(
            f"threshold must be a cosine similarity in (0, 1], not {threshold}: "
            "`genai cache calibrate` picks one from labelled pairs",
            field="threshold",
        )


def _short(params: str) -> str:
    import hashlib

    return hashlib.sha256(params.encode()).hexdigest()[:32] if params else ""
