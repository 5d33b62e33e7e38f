"""Background writes never pile up when the database is slow: they are bounded, and what
goes past the bound is dropped, counted and logged (real SQLite, held locked by another
connection the way a slow or busy database holds writers back)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

import genai
from apps._cache import GatewayCache
from apps._knowledge import DEFAULT_PROMPT, BotOptions, KnowledgeBot, _Prepared
from apps._prompts import PromptStage
from cache import SemanticCache
from cache._sql import SqlEntries
from genai.gateway import GatewayRequest, StageNotes
from genai.store import Store
from genai.store import schema as t
from genai.tenancy import Principal, Role
from genai.vectors import InMemoryVectorStore
from rag import ChatPlan


@dataclass
class World:
    settings: genai.Settings
    store: Store
    db: Path
    project_id: int

    def request(self, rid: str, question: str = "") -> GatewayRequest:
        principal = Principal(id=1, name="admin", grants={self.project_id: Role.OWNER})
        body = {"model": "bot", "messages": [{"role": "user", "content": question or rid}]}
        return GatewayRequest(
            request_id=rid,
            endpoint="chat",
            principal=principal,
            project_id=self.project_id,
            project="team",
            project_options={"cache": {"enabled": True}},  # the cache is off unless on
            body=body,
            deployment="bot",
            notes=StageNotes(deployment_revision=1),
        )

    def count(self, table: Any) -> int:
        with self.store.session() as s:
            return int(s.scalar(select(func.count()).select_from(table)) or 0)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    settings = genai.Settings(home=tmp_path / "home", user="admin")
    genai.init(settings, admin="admin")
    with genai.connect(settings) as client:
        client.projects.create("team")
    store = Store(settings.resolved_database_url)
    with store.session() as s:
        pid = s.scalar(select(t.Project.id).where(t.Project.name == "team")) or 0
    try:
        yield World(settings, store, tmp_path / "home" / "genai.db", pid)
    finally:
        store.dispose()


@contextlib.contextmanager
def writers_held(db: Path) -> Iterator[None]:
    """Another connection holds SQLite's write lock: writers wait (readers do not)."""
    conn = sqlite3.connect(db, isolation_level=None, timeout=30)
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


def test_knowledge_bot_traces_in_flight_are_bounded_while_the_database_is_slow(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    bot = KnowledgeBot(
        world.settings,
        world.store,
        prompts=PromptStage(world.settings, world.store),
        max_pending_traces=4,
    )
    prepared = _Prepared(BotOptions(kb="docs"), None, DEFAULT_PROMPT)
    plan = ChatPlan(question="q")

    async def answer_while_slow() -> tuple[int, int]:
        with writers_held(world.db), caplog.at_level(logging.WARNING, "genai.gateway.bot"):
            for n in range(11):
                bot._record(world.request(f"r{n}"), prepared, plan, [])
            in_flight = len(bot._pending)
        await bot.close()  # the database answers again: the writes in flight land
        return in_flight, bot.traces_dropped

    assert asyncio.run(answer_while_slow()) == (4, 7)
    assert world.count(t.KbAnswer) == 4
    assert "1 dropped so far (4 writes in flight at most)" in caplog.text


def test_cache_stores_in_flight_are_bounded_while_the_database_is_slow(
    world: World, embedder: Any, caplog: pytest.LogCaptureFixture
) -> None:
    cache = SemanticCache(InMemoryVectorStore(), embedder, store=world.store)
    stage = GatewayCache(cache, store=world.store, max_pending_stores=3)

    async def miss_while_slow() -> tuple[int, int]:
        requests = [world.request(f"r{n}", f"How do I change setting {n}?") for n in range(8)]
        for request in requests:
            assert await stage.lookup(request) is None  # reads: not held back
        with writers_held(world.db), caplog.at_level(logging.WARNING, "genai.cache"):
            for request in requests:
                await stage.store(request, _answer(request))
            in_flight = len(stage._pending)
        await stage.drain()
        return in_flight, stage.stores_skipped

    assert asyncio.run(miss_while_slow()) == (3, 5)
    cache.close()
    assert world.count(t.CacheEntry) == 3
    assert "1 skipped so far (3 in flight at most)" in caplog.text


def test_the_cache_hit_log_buffer_is_bounded_between_flushes(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    entries = SqlEntries(world.store, flush_interval_s=3600, max_buffered=5)
    try:
        for n in range(9):
            entries.record(world.project_id, "bot", {"lookups": 1}, hit=(f"e{n}", f"r{n}"))
        assert (entries.buffered(), entries.dropped) == (10, 8)  # 5 log rows, 5 "last used"
        with caplog.at_level(logging.WARNING, "genai.cache"):
            entries.flush()
        assert "8 hit records dropped" in caplog.text
        assert world.count(t.CacheHit) == 5
        assert entries.stats(world.project_id).lookups == 9  # counters are never dropped
    finally:
        entries.close()


def _answer(request: GatewayRequest) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": f"answer to {request.request_id}"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9},
    }
