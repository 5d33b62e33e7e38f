"""A soak: hundreds of distinct cache misses through one gateway with DLP, the semantic
cache and a knowledge bot, and memory stays flat after warm-up.

No clock is read: the test counts. Every bounded structure the requests fill is filled
past its bound (small bounds, so a few hundred requests do it) and must stay at or under
it; spaCy's vocabulary must not grow; and the Python heap may grow by no more than a
generous amount per request between two checkpoints after warm-up (tracemalloc). The
RSS-over-minutes figure is bench/soak.py's.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import random
import textwrap
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

import genai
from apps._cache import GatewayCache, _MemoEmbedder
from apps._dlp import DlpRequestStage, DlpResponseStage
from apps._knowledge import KnowledgeBot
from apps._prompts import PromptStage
from apps.deployments import apply_spec
from cache import ProjectCaches, SemanticCache
from cache._cache import _word_set
from cache._names import _names, _text, capitalised_keys, token_offsets
from cache._order import _words
from cache._verify import _analysis, number_spans
from genai.dlp import Dlp, MemoryVault, Policy, ProjectPolicies, load_keys
from genai.gateway import GatewayOptions, Stages
from genai.store import Store
from genai.store import schema as t
from genai.testing import FakeOpenAIServer, ManualClock, running_server
from genai.vectors import ChromaVectorStore
from rag import KnowledgeBases

pytestmark = pytest.mark.slow

WARM_UP, WINDOW = 160, 160  # requests before the first checkpoint, and between the two
#: Python-heap growth allowed per request after warm-up: generous (what stays is a few
#: hundred bytes a request of pools and statement caches still settling); the leaks this
#: guards against were kilobytes a request (spaCy's vocabulary ~2 KiB, the issue ~30 KiB).
MAX_GROWTH_PER_REQUEST = 1024
#: The cache's memos of question analyses (functools.lru_cache, bounded): filled to their
#: bound at the first checkpoint, so that the window sees them evict rather than grow.
MEMOS = (_word_set, _analysis, _names, _text, number_spans, capitalised_keys, token_offsets, _words)
BOUNDS = {"recent": 40, "sessions": 30, "entries": 25, "memo": 16, "traces": 8}

DOC = """
    # Accounts
    Accounts are opened under Settings, then Accounts. Closing one takes two days.
    # Refunds
    Refunds reach your card within five business days after we approve them.
"""


@dataclass
class Soak:
    url: str
    key: str
    upstream: FakeOpenAIServer
    store: Store
    project_id: int
    gateway: Any
    cache: SemanticCache
    memo: _MemoEmbedder
    vault: MemoryVault
    bot: KnowledgeBot
    dlp: DlpRequestStage

    async def send(self, count: int, questions: Iterator[tuple[str, dict[str, Any]]]) -> None:
        """``count`` distinct requests from four clients; every one must be a 200 miss."""
        limits = httpx.Limits(max_connections=4)
        async with httpx.AsyncClient(base_url=self.url, timeout=60, limits=limits) as http:
            queue = list(itertools.islice(questions, count))

            async def client() -> None:
                while queue:
                    model, body = queue.pop()
                    headers = {"authorization": f"Bearer {self.key}", **body.pop("headers")}
                    r = await http.post(
                        "/v1/chat/completions", json={"model": model, **body}, headers=headers
                    )
                    assert r.status_code == 200, r.text
                    assert r.headers["x-genai-cache"] == "miss"

            await asyncio.gather(*(client() for _ in range(4)))
        # the stores and traces under way (on the gateway's own loop) land first
        for _ in range(600):
            if not (self.cache_stage()._pending or self.bot._pending):
                assert self.gateway.ledger.flush()  # and the usage rows batched in memory
                return
            await asyncio.sleep(0.05)
        raise AssertionError("background writes did not finish")

    def cache_stage(self) -> GatewayCache:
        stage = self.gateway.stages.cache
        assert isinstance(stage, GatewayCache)
        return stage

    def entries(self) -> int:
        with self.store.session() as s:
            found = s.scalar(
                select(func.count())
                .select_from(t.CacheEntry)
                .where(t.CacheEntry.project_id == self.project_id)
            )
        return int(found or 0)

    def sizes(self) -> dict[str, int]:
        return {
            "recent": self.gateway.books.recent(),
            "sessions": self.vault.session_count(),
            "entries": self.entries(),
            "memo": len(self.memo._memo),
            "traces": len(self.bot._pending),
        }


def questions(seed: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """Distinct requests: 6 in 10 with an e-mail address and a new session, 3 in 10
    without personal data (one busy cache scope, indexed in Chroma), 1 in 10 to the bot."""
    rng = random.Random(seed)
    words = ["account", "invoice", "refund", "parcel", "booking", "ticket", "voucher", "claim"]
    for n in itertools.count(1):
        a, b = rng.sample(words, 2)
        text = f"What happens to my {a} {n * 7919 % 100_003} when the {b} expires?"
        model, headers = "chat", {}
        if n % 10 < 6:
            text = f"I am user{n}@example.com. {text}"
            headers = {"x-genai-session": f"s-{seed}-{n}"}
        elif n % 10 == 9:
            model, text = "docs-bot", f"How long do refunds {n} take?"
        yield model, {"messages": [{"role": "user", "content": text}], "headers": headers}


@pytest.fixture
def soak(tmp_path: Path, embedder: Any, gateway_server: Any) -> Iterator[Soak]:
    settings = genai.Settings(home=tmp_path / "home", user="admin")
    genai.init(settings, admin="admin")
    upstream = FakeOpenAIServer(max_model_len=100_000)
    docs = tmp_path / "docs" / "guide.md"
    docs.parent.mkdir()
    docs.write_text(textwrap.dedent(DOC))
    with running_server(upstream.app) as url, genai.connect(settings) as admin:
        admin.projects.create("soak")
        key = admin.keys.create("soak", role="developer").secret
        ProjectPolicies(admin).set("soak", Policy())
        ProjectCaches(admin).enable("soak")  # the cache is off unless a project turns it on
        kbs = KnowledgeBases(admin, embedder=embedder)
        kbs.create("soak", "docs").ingest([docs])
        chat = {"targets": [{"name": "up", "url": url + "/v1", "model": "fake-base"}]}
        admin.registry.deployments.create("soak", "chat", spec=chat)
        bot = {"kb": "docs", "prompt": None}
        apply_spec(admin, "soak", "docs-bot", {"targets": [
            {"name": "bot", "backend": "knowledge-bot", "options": bot}]})  # fmt: skip
        with admin.store.session() as s:
            pid = s.scalar(select(t.Project.id).where(t.Project.name == "soak")) or 0
        store = Store(settings.resolved_database_url, pool_size=10)
        # every TTL on a clock that stands still: what each request does (no route or key
        # reloaded, no memo expired) does not depend on how fast the machine is
        still = ManualClock()
        vault = MemoryVault(max_sessions=BOUNDS["sessions"], clock=still)
        dlp = DlpRequestStage(Dlp(keys=load_keys(settings), vault=vault), clock=still)
        memo = _MemoEmbedder(embedder, size=BOUNDS["memo"])
        cache = SemanticCache(
            ChromaVectorStore(settings.resolved_vector_path),
            memo,
            store=store,
            max_entries=BOUNDS["entries"],
            index_after=8,
        )
        prompts = PromptStage(settings, store, clock=still)
        knowledge = KnowledgeBot(
            settings,
            store,
            prompts=prompts,
            knowledge_bases=kbs,
            max_pending_traces=BOUNDS["traces"],
        )
        stages = Stages(
            request=[prompts, dlp],
            response=[DlpResponseStage(dlp.restorers)],
            cache=GatewayCache(cache, store=store, clock=still),
            targets={KnowledgeBot.name: knowledge},
        )
        options = GatewayOptions(ledger_interval_s=0.05, max_recent=BOUNDS["recent"])
        live = gateway_server(settings, stages=stages, options=options, clock=still)
        try:
            yield Soak(
                live.url,
                key,
                upstream,
                store,
                pid,
                live.gateway,
                cache,
                memo,
                vault,
                knowledge,
                dlp,
            )
        finally:
            upstream.requests.clear()
            dlp.close()
            cache.close()
            store.dispose()


def test_memory_stays_flat_after_warm_up(soak: Soak) -> None:
    stream = questions(seed=7)
    tracemalloc.start(1)  # before warm-up: what the window frees was traced when made
    try:
        asyncio.run(soak.send(WARM_UP, stream))
        over = {name: size for name, size in soak.sizes().items() if size > BOUNDS[name]}
        assert over == {}, f"past their bounds after warm-up: {over}"
        vocabulary = _vocabulary(soak.dlp)
        _fill_memos()
        soak.upstream.requests.clear()  # the fake upstream's own record of what it got
        before = _heap()

        asyncio.run(soak.send(WINDOW, stream))
        soak.upstream.requests.clear()
        after = _heap()
    finally:
        tracemalloc.stop()

    sizes = soak.sizes()
    assert {n: s for n, s in sizes.items() if s > BOUNDS[n]} == {}, sizes
    assert sizes["recent"] >= BOUNDS["recent"] * 0.9  # filled, then trimmed: really bounded
    assert sizes["entries"] == BOUNDS["entries"]
    assert sizes["sessions"] == BOUNDS["sessions"]
    assert _vocabulary(soak.dlp) == vocabulary
    per_request = (after[0] - before[0]) / WINDOW
    top = after[1].compare_to(before[1], "lineno")[:8]
    where = "\n".join(str(stat) for stat in top)
    assert per_request < MAX_GROWTH_PER_REQUEST, f"{per_request:.0f} B a request:\n{where}"


def _heap() -> tuple[int, tracemalloc.Snapshot]:
    gc.collect()
    return tracemalloc.get_traced_memory()[0], tracemalloc.take_snapshot()


def _fill_memos() -> None:
    for memo in MEMOS:
        size = memo.cache_info().maxsize or 0
        for n in range(size):
            memo(f"Where is the Wrenfold{n} voucher for order {n * 7919} of ACME{n}?")
        assert memo.cache_info().currsize == size


def _vocabulary(dlp: DlpRequestStage) -> int:
    """How many strings spaCy's vocabulary holds (it grows with every new word otherwise)."""
    from presidio_analyzer.nlp_engine import SpacyNlpEngine

    engine = dlp.dlp.detector(Policy())._get_engine().nlp_engine
    assert isinstance(engine, SpacyNlpEngine)
    nlp = engine.nlp["en"]  # type: ignore[index]  # typed None by Presidio; a dict once loaded
    return len(nlp.vocab.strings)
