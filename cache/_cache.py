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

Where the vectors are searched (a busy scope's collection, or a small scope's rows) is
``cache/_index.py``; the semantic tier's choice is ``cache/_lookup.py``.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from cache._async import AsyncCalls
from cache._bound import BoundStats, ErrorBound
from cache._entries import CacheStats, Entry, EntryStore, MemoryEntries
from cache._evict import feedback, invalidate
from cache._index import ScopeIndex
from cache._judge import PairJudge, PairScorer, check_max_error
from cache._keys import ChatRequest, Partition, RequestKey, request_key
from cache._lookup import (
    CacheHit,
    as_vector,
    check_settings,
    check_threshold,
    exact,
    judged,
    semantic,
    word_set,
)
from cache._verify import LexicalVerifier, Verifier
from genai.errors import ValidationError
from genai.vectors import VectorStore

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


#: kept here too: the soak test clears this memo between its rounds
_word_set = word_set


class SemanticCache(AsyncCalls):
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
        check_settings(
            threshold=threshold,
            collection_prefix=collection_prefix,
            margin=margin,
            top_k=top_k,
            index_after=index_after,
            ttl_s=ttl_s,
            max_entries=max_entries,
        )
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
        self._clock = clock
        self._entries: EntryStore
        if store is None:
            self._entries = MemoryEntries()
        else:
            from cache._sql import SqlEntries

            self._entries = entries = SqlEntries(store)
            if self.judge is not None:  # the bound's evidence is every process's
                self.judge.bound.share(entries.evidence)
        self._scopes = ScopeIndex(
            vectors,
            self._entries,
            prefix=collection_prefix,
            model=embedder.model_name,
            index_after=index_after,
        )
        self._last_purge = clock()
        self._lock = threading.Lock()

    @property
    def vectors(self) -> VectorStore:
        """The vector store the busy scopes' collections live in (may be replaced)."""
        return self._scopes.vectors

    @vectors.setter
    def vectors(self, vectors: VectorStore) -> None:
        self._scopes.vectors = vectors

    @property
    def index_after(self) -> int:
        """Entries a scope holds before it gets a collection of its own."""
        return self._scopes.index_after

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
        return self._scopes.collection(project_id, scope)

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
            check_threshold(threshold)
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
        hit = exact(self, project, key, now)
        if hit is None and key.question is not None:
            vector = embedding if embedding is not None else self.embed(key.question)
            judge = self.judge if use_verifier else None
            choice = semantic(self, project, key, vector, now, threshold or self.threshold)
            if choice is not None and judge is not None:
                deployment = partition.deployment
                choice = judged(choice, judge, project, deployment, key.question, max_error)
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
            score=hit.verifier_score if hit is not None else None,
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
            vector = as_vector(embedding if embedding is not None else self.embed(key.question))
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
            self._scopes.add(
                partition.project_id, partition.deployment, key.scope, entry.id, vector
            )
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
        given = (
            ("deployment", deployment),
            ("adapter", adapter),
            ("prompt_version", prompt_version),
            ("kb_version", kb_version),
        )
        return invalidate(self, project_id, {k: v for k, v in given if v is not None})

    def evict(self, entry_id: str, *, project_id: int) -> bool:
        """Delete one entry (e.g. an answer reported wrong); whether it existed."""
        gone = self._entries.delete(project_id, [entry_id])
        self._forget_vectors(project_id, gone)
        return bool(gone)

    def feedback(self, project_id: int, request_id: str, *, wrong: bool = True) -> int:
        """A caller's verdict on the answer to ``request_id``: when it was wrong, the
        entry that answered it (or that the request created) is evicted and counted as a
        false hit, and a hit the pair verifier judged is a labelled error of the project's
        error bound (once, whichever process hears it). How many entries were evicted."""
        return feedback(self, project_id, request_id) if wrong else 0

    def recheck(
        self, project_id: int, request_id: str, deployment: str, score: float, *, same: bool
    ) -> bool:
        """A judged semantic hit (verifier ``score``) was asked of the model again, off the
        hot path: whether the fresh answer agreed with the cached one (``same``). Counted in
        the project's evidence; a disagreement is a labelled error, unless feedback labelled
        that hit already (each hit counts once). Whether it counted as an error."""
        if self.judge is None:
            return False
        wrong = not same and bool(self._entries.claim_judged(project_id, request_id))
        self.judge.bound.rechecked(project_id, score, wrong=wrong, deployment=deployment)
        return wrong

    def stats(self, project_id: int) -> CacheStats:
        """Hit rate, tokens and cost saved, false hits and entries of one project."""
        self._entries.flush()
        return self._entries.stats(project_id)

    def bound_stats(self, project_id: int) -> BoundStats | None:
        """The semantic hits the pair verifier judged for the project (in every process, with
        a store): how many, their mean estimated error, how many were labelled wrong (None:
        no pair verifier)."""
        if self.judge is None:
            return None
        self._entries.flush()
        self.judge.bound.forget(project_id)
        return self.judge.stats(project_id)

    def flush(self) -> None:
        """Write buffered counters now (they are written every second otherwise)."""
        self._entries.flush()

    def close(self) -> None:
        self._entries.close()

    # ------------------------------------------------------------ internals

    def _forget_vectors(self, project_id: int, gone: Sequence[tuple[str, str]]) -> None:
        self._scopes.forget(project_id, gone)

    def _maybe_purge(self, now: float) -> None:
        if now - self._last_purge < _PURGE_EVERY_S or not self._lock.acquire(blocking=False):
            return
        try:
            self._last_purge = now
        finally:
            self._lock.release()
        self._scopes.purge_expired(now)

    def purge_orphaned_collections(self) -> list[str]:
        """Drop this cache's vector collections whose project holds no entry any more (the
        names dropped). Deleting a project deletes its entries in the database, which
        cannot reach the vector store; its vectors would stay without this.

        Collections are listed before the projects are read: one that a store creates
        meanwhile belongs to a project whose entries are in the database already, so it
        stays."""
        return self._scopes.purge_orphaned()


def _short(params: str) -> str:
    import hashlib

    return hashlib.sha256(params.encode()).hexdigest()[:32] if params else ""
