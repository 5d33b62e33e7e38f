"""``genai cache`` as users run it: calibrate a threshold from labelled pairs, read a
project's counters, empty its cache; roles apply, another project's cache is not found."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _cli import Cli
from sqlalchemy import select

from cache import Partition, SemanticCache
from genai.store import Store
from genai.store import schema as t
from genai.testing import FakeEmbedder
from genai.vectors import InMemoryVectorStore

pytestmark = pytest.mark.sqlite_only  # the CLI over the cache; its store: test_cache_store.py


@pytest.fixture
def cli(tmp_path: Path, db_url: str) -> Cli:
    return Cli(tmp_path / "home", db_url)


def test_calibrate_prints_the_threshold_for_a_precision(cli: Cli, tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.jsonl"
    rows = [
        ("how can I open an account", "How do I open an account?", 1),
        ("What does the premium plan cost?", "Price of the premium plan?", 1),
        ("How do I close an account?", "How do I open an account?", 0),
        ("Where is the nearest branch?", "What are your opening hours?", 0),
    ]
    lines = [json.dumps({"query": q, "cached": c, "label": label}) for q, c, label in rows]
    pairs.write_text("\n".join(lines) + "\n")
    found = cli.json("cache", "calibrate", str(pairs), "--precision", "0.98")
    assert found["threshold"] is not None and found["rejected_by_verifier"] >= 1
    chosen = next(r for r in found["table"] if r["threshold"] == found["threshold"])
    assert chosen["false_hits"] == 0 and chosen["hits"] >= 1
    shown = cli("cache", "calibrate", str(pairs), "--precision", "0.98").stdout
    assert f"threshold {found['threshold']:.2f}" in shown
    (tmp_path / "bad.jsonl").write_text("not json\n")
    result = cli("cache", "calibrate", str(tmp_path / "bad.jsonl"), ok=False)
    assert result.returncode == 1 and "bad.jsonl:1" in result.stderr
    assert "Traceback" not in result.stderr


def test_stats_and_invalidate_follow_roles(cli: Cli, db_url: str) -> None:
    cli("init")
    cli("project", "create", "shop")
    cli("project", "create", "bank")
    cli("project", "member", "add", "bob", "-p", "shop", "--role", "viewer")
    store = Store(db_url)
    with store.session() as s:
        project_id = s.scalar(select(t.Project.id).where(t.Project.name == "shop"))
    assert project_id is not None
    embedder = FakeEmbedder(2)
    cache = SemanticCache(InMemoryVectorStore(), embedder, store=store)
    part = Partition(project_id=project_id, deployment="chat")
    cache.store(part, "What are your opening hours?", "9 to 5", embedding=[1.0, 0.0])
    cache.lookup(part, "What are your opening hours?")
    cache.close()
    assert embedder.calls == []  # the test gave the vector; the lookup was exact
    store.dispose()

    stats = cli.json("cache", "stats", "shop")
    assert (stats["entries"], stats["lookups"], stats["exact_hits"]) == (1, 1, 1)
    assert "hit rate 100.0%" in cli("--as", "bob", "cache", "stats", "shop").stdout
    denied = cli("--as", "bob", "cache", "invalidate", "shop", ok=False)
    assert denied.returncode == 1 and "viewer" in denied.stderr
    hidden = cli("--as", "bob", "cache", "stats", "bank", ok=False)
    assert "project 'bank' not found" in hidden.stderr
    assert cli.json("cache", "invalidate", "shop", "--deployment", "other")["deleted"] == 0
    assert cli.json("cache", "invalidate", "shop")["deleted"] == 1
    assert cli.json("cache", "stats", "shop")["entries"] == 0


def test_enable_and_disable_per_project_and_deployment(cli: Cli) -> None:
    """Off until an owner turns it on: for the whole project, or for one deployment."""
    cli("init")
    cli("project", "create", "shop")
    cli("project", "create", "bank")
    cli("project", "member", "add", "bob", "-p", "shop", "--role", "maintainer")
    on = cli.json("cache", "enable", "shop", "--deployment", "chat", "--threshold", "0.9")
    assert on == {"project": "shop", "all_deployments": False, "on": ["chat"], "off": []}
    assert "is on for chat" in cli("cache", "enable", "shop", "-d", "chat").stdout
    everywhere = cli.json("cache", "enable", "shop")
    assert (everywhere["all_deployments"], everywhere["on"]) == (True, ["chat"])
    but = cli("cache", "disable", "shop", "--deployment", "drafts").stdout
    assert "is on for every deployment but drafts" in but
    off = cli.json("cache", "disable", "shop")
    assert off == {"project": "shop", "all_deployments": False, "on": [], "off": ["drafts"]}
    denied = cli("--as", "bob", "cache", "enable", "shop", ok=False)
    assert denied.returncode == 1 and "maintainer" in denied.stderr
    hidden = cli("--as", "bob", "cache", "enable", "bank", ok=False)
    assert "project 'bank' not found" in hidden.stderr
    bad = cli("cache", "enable", "shop", "--threshold", "1.5", ok=False)
    assert bad.returncode == 1 and "threshold" in bad.stderr and "Traceback" not in bad.stderr
    audit = cli.json("audit", "list", "-p", "shop")
    assert sum(a["action"] == "project.set-option" for a in audit) == 5
