"""The usage ledger and the showback report, on SQLite and PostgreSQL.

The expected numbers are computed here, in Python, from the very events recorded.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

from genai.errors import Forbidden, NotFoundError, ValidationError
from genai.tenancy import GROUPS, UsageEvent, UsageReport, UsageRow

DAY1, DAY2, DAY3 = date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 3)
MINUS_TWO = timezone(timedelta(hours=-2))


def _at(day: date, hour: int, tz: timezone = UTC) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=tz)


# (project, event, UTC day it belongs to)
LEDGER: list[tuple[str, UsageEvent, date]] = [
    (
        "alpha",
        UsageEvent(
            model="llama",
            prompt_tokens=10,
            completion_tokens=5,
            cost_usd=0.01,
            latency_ms=100,
            ts=_at(DAY1, 9),
        ),
        DAY1,
    ),
    (
        "alpha",
        UsageEvent(
            model="llama",
            adapter="support",
            prompt_tokens=20,
            completion_tokens=8,
            cost_usd=0.02,
            gpu_seconds=1.5,
            latency_ms=300,
            ts=_at(DAY1, 10),
        ),
        DAY1,
    ),
    (
        "alpha",
        UsageEvent(
            model="llama",
            adapter="support",
            prompt_tokens=7,
            cost_usd=0.0,
            latency_ms=20,
            cache_hit=True,
            ts=_at(DAY2, 8),
        ),
        DAY2,
    ),
    (
        "alpha",
        UsageEvent(
            model="mistral",
            prompt_tokens=3,
            status="upstream_error",
            latency_ms=50,
            ts=_at(DAY2, 12),
        ),
        DAY2,
    ),
    # 23:30 on day 2 at UTC-2 is 01:30 on day 3 in UTC: days are UTC days.
    (
        "alpha",
        UsageEvent(
            model="mistral",
            prompt_tokens=40,
            completion_tokens=40,
            cost_usd=0.1,
            latency_ms=250,
            ts=datetime(2026, 11, 2, 23, 30, tzinfo=MINUS_TWO),
        ),
        DAY3,
    ),
    (
        "beta",
        UsageEvent(
            model="llama",
            prompt_tokens=100,
            completion_tokens=50,
            cost_usd=0.5,
            gpu_seconds=4.0,
            latency_ms=1000,
            ts=_at(DAY1, 23),
        ),
        DAY1,
    ),
    (
        "beta",
        UsageEvent(
            model="llama",
            adapter="legal",
            prompt_tokens=60,
            completion_tokens=6,
            cost_usd=0.25,
            latency_ms=700,
            status="dlp_blocked",
            ts=_at(DAY3, 1),
        ),
        DAY3,
    ),
    (
        "beta",
        UsageEvent(
            model="llama",
            adapter="legal",
            prompt_tokens=60,
            completion_tokens=6,
            latency_ms=10,
            cache_hit=True,
            ts=_at(DAY3, 2),
        ),
        DAY3,
    ),
]

ALL_GROUPINGS = [
    combo for size in range(len(GROUPS) + 1) for combo in itertools.combinations(GROUPS, size)
]


def _labels(project: str, event: UsageEvent, day: date, groups: Sequence[str]) -> tuple[Any, ...]:
    values = {"project": project, "model": event.model, "adapter": event.adapter, "day": day}
    return tuple(values[g] for g in groups)


def _expected(entries: list[tuple[str, UsageEvent, date]]) -> dict[str, Any]:
    return {
        "requests": len(entries),
        "prompt_tokens": sum(e.prompt_tokens for _, e, _ in entries),
        "completion_tokens": sum(e.completion_tokens for _, e, _ in entries),
        "cost_usd": pytest.approx(sum(e.cost_usd for _, e, _ in entries)),
        "gpu_seconds": pytest.approx(sum(e.gpu_seconds for _, e, _ in entries)),
        "cache_hits": sum(e.cache_hit for _, e, _ in entries),
        "errors": sum(e.status != "ok" for _, e, _ in entries),
        "avg_latency_ms": pytest.approx(  # the report rounds it to 3 decimals
            sum(e.latency_ms for _, e, _ in entries) / len(entries) if entries else 0.0, abs=5e-4
        ),
    }


def _numbers(row: UsageRow) -> dict[str, Any]:
    return row.model_dump(exclude={"project", "model", "adapter", "day"})


def _by_labels(report: UsageReport) -> dict[tuple[Any, ...], dict[str, Any]]:
    out = {}
    for row in report.rows:
        labels = tuple(getattr(row, g) for g in report.group_by)
        assert labels not in out, f"two rows for {labels}"
        out[labels] = _numbers(row)
    return out


def _check(report: UsageReport, entries: list[tuple[str, UsageEvent, date]]) -> None:
    groups = report.group_by
    expected: dict[tuple[Any, ...], list[tuple[str, UsageEvent, date]]] = {}
    for entry in entries if groups else []:  # no groups: the total alone
        expected.setdefault(_labels(*entry, groups), []).append(entry)
    got = _by_labels(report)
    assert set(got) == set(expected), groups
    for labels, rows in expected.items():
        assert got[labels] == _expected(rows), (groups, labels)
    assert _numbers(report.total) == _expected(entries), groups


@pytest.fixture
def admin(platform: Callable[..., Any]) -> Any:
    client = platform()
    for name in ("alpha", "beta"):  # created in name order, so ids sort like names
        client.projects.create(name)
    for project, event, _ in LEDGER:
        client.usage.record(project, event)
    return client


def test_the_ledger_keeps_every_event_in_its_utc_day(admin: Any) -> None:
    report = admin.usage.report(group_by=["project", "day"])
    assert [(r.project, r.day, r.requests) for r in report.rows] == [
        ("alpha", DAY1, 2),
        ("alpha", DAY2, 2),
        ("alpha", DAY3, 1),
        ("beta", DAY1, 1),
        ("beta", DAY3, 2),
    ]


def test_report_groups_by_every_subset_and_totals_equal_the_rows(admin: Any) -> None:
    for groups in ALL_GROUPINGS:  # 16 groupings on one ledger
        report = admin.usage.report(group_by=groups)

        assert report.group_by == groups
        _check(report, LEDGER)
        if not groups:
            assert report.rows == []
            continue
        for key in ("requests", "prompt_tokens", "completion_tokens", "cache_hits", "errors"):
            assert sum(getattr(row, key) for row in report.rows) == getattr(report.total, key)
        assert sum(r.cost_usd for r in report.rows) == pytest.approx(report.total.cost_usd)


def test_report_of_one_project_holds_only_its_rows(admin: Any) -> None:
    report = admin.usage.report("beta", group_by=["model", "adapter"])
    _check(report, [entry for entry in LEDGER if entry[0] == "beta"])
    assert {r.adapter for r in report.rows} == {"", "legal"}


SPANS = [(DAY2, DAY2), (DAY2, None), (None, DAY1), (DAY1, DAY3), (DAY3, DAY1)]


def test_since_and_until_are_inclusive_utc_days(admin: Any) -> None:
    for since, until in SPANS:
        report = admin.usage.report(group_by=["project", "day"], since=since, until=until)

        inside = [
            entry
            for entry in LEDGER
            if (since is None or entry[2] >= since) and (until is None or entry[2] <= until)
        ]
        assert (report.since, report.until) == (since, until)
        _check(report, inside)


def test_a_quiet_period_reports_zeros(admin: Any) -> None:
    report = admin.usage.report(since=date(2027, 1, 1))
    assert report.rows == []
    assert _numbers(report.total) == _expected([])


def test_an_unknown_group_is_refused(admin: Any) -> None:
    for groups, named in ((["team"], "team"), (["project", "hour"], "hour"), (["Day"], "Day")):
        with pytest.raises(ValidationError, match=f"cannot group usage by {named}:") as caught:
            admin.usage.report(group_by=groups)
        assert caught.value.field == "group_by"
        assert "project, model, adapter, day" in str(caught.value)


def test_a_user_sees_only_the_usage_of_projects_they_belong_to(
    admin: Any, platform: Callable[..., Any]
) -> None:
    admin.projects.add_member("alpha", "carol", role="viewer")
    admin.users.add("dave")
    carol, dave = platform("carol"), platform("dave")

    everything = carol.usage.report(group_by=["project"])

    assert [r.project for r in everything.rows] == ["alpha"]
    _check(everything, [entry for entry in LEDGER if entry[0] == "alpha"])
    with pytest.raises(NotFoundError):
        carol.usage.report("beta")
    nothing = dave.usage.report(group_by=["project", "model"])
    assert nothing.rows == [] and nothing.total.requests == 0


def test_recording_needs_the_developer_role(admin: Any, platform: Callable[..., Any]) -> None:
    admin.projects.add_member("alpha", "carol", role="viewer")
    admin.projects.add_member("alpha", "erin", role="developer")

    with pytest.raises(Forbidden, match="usage:record"):
        platform("carol").usage.record("alpha", UsageEvent(model="llama"))
    assert platform("erin").usage.record("alpha", [UsageEvent(model="llama")] * 2) == 2

    assert admin.usage.report("alpha", group_by=[]).total.requests == 7
