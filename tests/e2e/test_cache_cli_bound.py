"""``genai cache stats`` and ``genai cache calibrate --verifier`` on the error bound: the
estimated and observed error rate per deployment, from the evidence every gateway process
shares; precision and hit rate with the verifier and the bound on labelled pairs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _cli import Cli
from sqlalchemy import select

from cache import ErrorCurve, artefact_installed
from cache._pair import VerifierArtefact
from cache._sql_evidence import SqlEvidence
from genai.store import Store
from genai.store import schema as t

pytestmark = [
    pytest.mark.sqlite_only,
    pytest.mark.skipif(not artefact_installed(), reason="the trained verifier is not built"),
]


@pytest.fixture
def cli(tmp_path: Path, db_url: str) -> Cli:
    return Cli(tmp_path / "home", db_url)


def test_stats_reports_the_bound_per_deployment(cli: Cli, db_url: str) -> None:
    cli("init")
    cli("project", "create", "shop")
    cli("project", "create", "bank")
    cli("cache", "enable", "shop", "--max-error", "0.05", "--recheck-rate", "0.1")
    curve = ErrorCurve.from_dict(VerifierArtefact.read().calibration)
    store = Store(db_url)
    with store.session() as s:
        shop = s.scalar(select(t.Project.id).where(t.Project.name == "shop"))
        bank = s.scalar(select(t.Project.id).where(t.Project.name == "bank"))
    assert shop is not None and bank is not None
    evidence = SqlEvidence(store)
    top = len(curve.edges) - 1
    evidence.add(shop, "chat", curve.digest(), top, {"hits": 40, "estimated": 0.4})
    evidence.add(shop, "chat", curve.digest(), top, {"reported": 1, "rechecked": 4})
    evidence.add(shop, "chat", curve.digest(), top, {"recheck_wrong": 1})
    evidence.add(bank, "chat", curve.digest(), top, {"hits": 5, "reported": 5})
    evidence.flush()
    store.dispose()

    found = cli.json("cache", "stats", "shop")
    (row,) = found["error_bound"]
    assert row["deployment"] == "chat" and row["max_error"] == 0.05
    assert (row["judged_hits"], row["reported_wrong"], row["recheck_wrong"]) == (40, 1, 1)
    assert row["observed_error"] == pytest.approx(2 / 40)
    low, high = row["observed_interval"]
    assert low < 2 / 40 < high
    assert row["mean_estimated_error"] == pytest.approx(0.01)
    if row["min_score"] is not None:
        assert row["estimated_error"] <= 0.05
    shown = cli("cache", "stats", "shop").stdout
    assert "error bound of verified semantic hits" in shown and "1 + 1" in shown
    assert cli.json("cache", "stats", "bank")["error_bound"][0]["reported_wrong"] == 5


def test_calibrate_reports_the_verifier_and_the_bound(cli: Cli, tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.jsonl"
    rows = [
        ("how can I open an account", "How do I open an account?", 1),
        ("What does the premium plan cost?", "Price of the premium plan?", 1),
        ("How do I close an account?", "How do I open an account?", 0),
        ("What are your opening hours today?", "What are your opening hours?", 1),
    ]
    lines = [json.dumps({"query": q, "cached": c, "label": label}) for q, c, label in rows]
    pairs.write_text("\n".join(lines) + "\n")
    found = cli.json(
        "cache", "calibrate", str(pairs), "--verifier", "--threshold", "0.6", "--max-error", "0.1"
    )
    report = found["verifier"]
    assert report["threshold"] == 0.6 and report["pairs"] == 4
    names = [r["name"] for r in report["rows"]]
    assert names == ["rules only", "rules + verifier", "rules + verifier + bound"]
    rules, verified, bounded = report["rows"]
    assert verified["hits"] <= rules["hits"] and bounded["max_error"] == 0.1
    assert all(0 <= r["precision"] <= 1 and 0 <= r["hit_rate"] <= 1 for r in report["rows"])
