"""The cache benchmark's data: the three labelled sets, their embeddings, synthetic fill vectors.

Every set is "store these texts, then look these texts up": a query is a paraphrase (a hit is
correct when it returns the answer stored for its own first sentence, or for an identical
text stored under another id) or a non-paraphrase (it must miss; any hit is a false hit).
Embeddings come from our bundled all-MiniLM-L6-v2 (``SentenceTransformerEmbedder``, unit
rows) once per text and are kept in ``bench/.venvs/cache-embeddings.npz`` (git-ignored) so
that reruns skip the ~1 min of encoding; both caches get exactly these vectors.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

BENCH = Path(__file__).resolve().parent
DATA = BENCH.parent.parent / "shared" / "data"
EMBED_CACHE = BENCH / ".venvs" / "cache-embeddings.npz"
STS_PARAPHRASE, STS_MUST_MISS = 4.0, 3.0  # score >= 4: paraphrase; score < 3: must miss

Vectors = NDArray[np.float32]


@dataclass
class Dataset:
    name: str
    source: str
    rule: str
    stored: list[str]  # entry i is stored with the answer str(i)
    queries: list[str]
    # per query: the answers that are correct hits; empty = must miss
    accept: list[frozenset[str]]
    # per query: the answers of its own pair's first sentence (for must-miss queries too)
    own: list[frozenset[str]]
    pair: list[int]  # per query: the index of its own pair's stored text
    stored_vecs: Vectors = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    query_vecs: Vectors = field(default_factory=lambda: np.zeros((0, 0), np.float32))

    @property
    def answers(self) -> list[str]:
        return [str(i) for i in range(len(self.stored))]

    @property
    def positives(self) -> int:
        return sum(1 for a in self.accept if a)

    @property
    def negatives(self) -> int:
        return sum(1 for a in self.accept if not a)


def _same_text_ids(stored: list[str]) -> dict[str, frozenset[str]]:
    """Text → the answers stored under that text, or under the same text with other case
    or spacing (one question, as both caches' exact tiers see it)."""
    ids: dict[str, set[str]] = {}
    for i, text in enumerate(stored):
        ids.setdefault(_fold(text), set()).add(str(i))
    return {text: frozenset(ids[_fold(text)]) for text in stored}


def _fold(text: str) -> str:
    return " ".join(text.split()).casefold()


def gptcache_mock(limit: int | None = None) -> Dataset:
    pairs = json.loads((DATA / "cache" / "gptcache_mock_data.json").read_text())[:limit]
    stored = [p["origin"] for p in pairs]
    same = _same_text_ids(stored)
    return Dataset(
        name="GPTCache mock data",
        source="cache/gptcache_mock_data.json",
        rule="store every `origin` (answer: its index), query every `similar`; correct = the "
        "answer of its own origin (or of an origin with the same text: 67 origins repeat)",
        stored=stored,
        queries=[p["similar"] for p in pairs],
        accept=[same[t] for t in stored],
        own=[same[t] for t in stored],
        pair=list(range(len(stored))),
    )


def mrpc(limit: int | None = None) -> Dataset:
    path = DATA / "paraphrase" / "mrpc" / "msr_paraphrase_test.txt"
    rows = [line.rstrip("\n").split("\t") for line in path.read_text("utf-8-sig").splitlines()]
    rows = rows[1:][:limit]
    stored = [r[3] for r in rows]
    same = _same_text_ids(stored)
    return Dataset(
        name="MRPC test",
        source="paraphrase/mrpc/msr_paraphrase_test.txt",
        rule="store every sentence 1, query every sentence 2; label 1: correct = its own "
        "sentence 1; label 0: must miss",
        stored=stored,
        queries=[r[4] for r in rows],
        accept=[same[s] if r[0] == "1" else frozenset() for s, r in zip(stored, rows, strict=True)],
        own=[same[s] for s in stored],
        pair=list(range(len(stored))),
    )


def stsb(limit: int | None = None) -> Dataset:
    path = DATA / "paraphrase" / "stsbenchmark" / "sts-test.csv"
    rows = [line.split("\t") for line in path.read_text("utf-8").splitlines() if line.strip()]
    rows = rows[:limit]
    stored = [r[5] for r in rows]
    same = _same_text_ids(stored)
    queries: list[str] = []
    accept: list[frozenset[str]] = []
    own: list[frozenset[str]] = []
    pair: list[int] = []
    for i, r in enumerate(rows):
        score = float(r[4])
        if score >= STS_PARAPHRASE or score < STS_MUST_MISS:
            queries.append(r[6])
            accept.append(same[r[5]] if score >= STS_PARAPHRASE else frozenset())
            own.append(same[r[5]])
            pair.append(i)
    return Dataset(
        name="STS-B test",
        source="paraphrase/stsbenchmark/sts-test.csv",
        rule=f"store every sentence 1 (all {len(rows)} pairs), query sentence 2 of the pairs "
        f"scored >= {STS_PARAPHRASE:g} (paraphrase: correct = its own sentence 1) or "
        f"< {STS_MUST_MISS:g} (must miss); pairs scored in [3, 4) are stored but not queried",
        stored=stored,
        queries=queries,
        accept=accept,
        own=own,
        pair=pair,
    )


def load_datasets(limit: int | None = None) -> list[Dataset]:
    return [gptcache_mock(limit), mrpc(limit), stsb(limit)]


class Embeddings:
    """Text → unit vector with our bundled embedder, memoised on disk by text hash."""

    def __init__(self, path: Path = EMBED_CACHE) -> None:
        self.path = path
        self.known: dict[str, Vectors] = {}
        self.seconds = 0.0
        self.encoded = 0
        if path.exists():
            with np.load(path) as data:
                self.known = dict(zip(data["keys"].tolist(), data["vectors"], strict=True))

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def fill(self, texts: list[str], progress: Callable[[int], None] | None = None) -> None:
        missing = sorted({t for t in texts if self.key(t) not in self.known})
        if not missing:
            return
        from genai.models import SentenceTransformerEmbedder

        embedder = SentenceTransformerEmbedder()
        started = time.perf_counter()
        for i in range(0, len(missing), 256):
            chunk = missing[i : i + 256]
            for text, vec in zip(chunk, embedder.embed(chunk), strict=True):
                self.known[self.key(text)] = vec.astype(np.float32)
            if progress:
                progress(len(chunk))
        self.seconds += time.perf_counter() - started
        self.encoded += len(missing)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = np.array(list(self.known))
        np.savez(self.path, keys=keys, vectors=np.stack(list(self.known.values())))

    def of(self, texts: list[str]) -> Vectors:
        return np.stack([self.known[self.key(t)] for t in texts]).astype(np.float32)


def embedded_datasets(
    limit: int | None, task: Callable[[str, int], AbstractContextManager[Callable[[int], None]]]
) -> tuple[list[Dataset], Embeddings]:
    """The three sets with their vectors (texts not yet in the on-disk cache are encoded,
    with a ``task`` progress bar) and the embeddings they came from."""
    datasets = load_datasets(limit)
    emb = Embeddings()
    texts = sorted({t for ds in datasets for t in (*ds.stored, *ds.queries)})
    missing = sum(1 for t in texts if emb.key(t) not in emb.known)
    with task(f"embedding {missing:,} texts (all-MiniLM-L6-v2, cached after)", missing) as adv:
        emb.fill(texts, adv)
    for ds in datasets:
        ds.stored_vecs, ds.query_vecs = emb.of(ds.stored), emb.of(ds.queries)
    return datasets, emb


def _unit(x: Vectors) -> Vectors:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def perturb(base: Vectors, cosine: float, rng: np.random.Generator) -> Vectors:
    """Unit vectors at about ``cosine`` to each row of ``base`` (Gaussian noise, renormalised)."""
    dim = base.shape[1]
    sigma = np.sqrt((1.0 / cosine**2 - 1.0) / dim)
    return _unit(base + rng.normal(0.0, sigma, base.shape).astype(np.float32))


@dataclass
class Fill:
    """``size`` synthetic entries and 1,000-ish queries for the latency runs."""

    texts: list[str]
    vectors: Vectors
    query_texts: list[str]
    query_vecs: Vectors
    near: int  # the first ``near`` queries sit close to a stored entry (hits expected)


def _tag(i: int) -> str:
    """A unique lower-case letter word for ``i`` (no digits, so no number check trips)."""
    letters = ""
    while True:
        i, r = divmod(i, 26)
        letters += "abcdefghijklmnopqrstuvwxyz"[r]
        if i == 0:
            return "x" + letters


def synthetic_fill(
    real_texts: list[str], real: Vectors, size: int, queries: int, seed: int = 7
) -> Fill:
    """Perturbed real embeddings: entry i is real[i % n] moved to cosine ~0.9 of it.

    Entry texts are the real text plus a unique tag word. Queries: half are stored entries
    moved to cosine ~0.95, worded as the entry plus "?" (so they miss the exact tier and
    should hit the semantic one, verifier included); half are real embeddings moved to
    cosine ~0.5 under their own real text (should miss). Every lookup runs the vector search.
    """
    rng = np.random.default_rng(seed + size)
    n = len(real_texts)
    idx = np.arange(size) % n
    vectors = perturb(real[idx], 0.9, rng)
    texts = [f"{real_texts[j]} {_tag(i)}" for i, j in enumerate(idx)]
    near = queries // 2
    pick_near = rng.integers(0, size, near)
    pick_far = rng.integers(0, n, queries - near)
    query_vecs = np.concatenate(
        [perturb(vectors[pick_near], 0.95, rng), perturb(real[pick_far], 0.5, rng)]
    )
    query_texts = [texts[i] + " ?" for i in pick_near]
    query_texts += [f"{real_texts[j]} {_tag(size + q)}" for q, j in enumerate(pick_far)]
    return Fill(texts, vectors, query_texts, query_vecs.astype(np.float32), near)
