"""The registry's list calls on real SQLite and PostgreSQL: what each entry carries (latest
metrics, lineage inputs, aliases, the rows it points at) is read in a constant number of
queries, ``limit`` gives the newest entries, ``count`` how many there are, ``latest`` the
newest version of each name."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from genai.errors import ValidationError

P = "demo"


@pytest.fixture
def admin(platform: Any) -> Any:
    client = platform()
    client.projects.create(P)
    client.registry.models.register(P, "base", source="org/base-model", license="apache-2.0")
    return client


@contextmanager
def statements(client: Any) -> Iterator[list[str]]:
    """The SQL statements the client's engine runs inside the block."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(str(args[2]))

    engine = client.store.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _runs(client: Any, n: int, *, first: int = 0) -> list[str]:
    ids = []
    for i in range(first, first + n):
        data = client.registry.datasets.register(P, f"data-{i}", [{"q": "a", "i": i}])
        run = client.registry.runs.start(
            P, f"run-{i}", datasets=[data.ref], base_model="model:base@1"
        )
        run.log({"loss": 1.0}, step=1)
        run.log({"acc": 0.5, "loss": 0.25}, step=3)
        run.log({"loss": 0.5}, step=2)  # logged late, not the latest step
        run.finish()
        ids.append(run.id)
    return ids


def test_runs_list_carries_latest_metrics_and_inputs(admin: Any) -> None:
    ids = _runs(admin, 3)
    listed = admin.registry.runs.list(P)
    assert [r.id for r in listed] == ids[::-1]  # newest first
    for i, info in enumerate(listed[::-1]):
        assert info.metrics == {"loss": 0.25, "acc": 0.5}
        assert list(info.metrics) == ["loss", "acc"]  # in the order first logged
        assert info.inputs == [f"dataset:data-{i}@1", "model:base@1"]
        assert info == admin.registry.runs.get(P, info.id)


def test_a_list_costs_the_same_queries_for_3_or_12_entries(admin: Any) -> None:
    _runs(admin, 3)
    with statements(admin) as few:
        admin.registry.runs.list(P)
        admin.registry.datasets.list(P)
    _runs(admin, 9, first=3)
    admin.registry.aliases.set(P, "dataset:data-4@1", "production")
    with statements(admin) as many:
        runs = admin.registry.runs.list(P)
        datasets = admin.registry.datasets.list(P)
    assert (len(runs), len(datasets)) == (12, 12)
    assert len(many) == len(few)
    assert next(d for d in datasets if d.name == "data-4").aliases == ["production"]


def test_limit_gives_the_newest_and_count_all(admin: Any) -> None:
    ids = _runs(admin, 4)
    runs = admin.registry.runs
    assert [r.id for r in runs.list(P, limit=2)] == [ids[3], ids[2]]
    assert (runs.count(P), runs.count(P, status="finished"), runs.count(P, name="run-1")) == (
        4,
        4,
        1,
    )
    assert [r.id for r in runs.list(P, name="run-1", limit=5)] == [ids[1]]
    datasets = admin.registry.datasets
    datasets.register(P, "data-1", [{"q": "b"}])  # a second version of an older name
    admin.registry.aliases.set(P, "dataset:data-1@2", "production")
    newest = datasets.list(P, limit=3)
    assert [(d.name, d.version) for d in newest] == [("data-1", 2), ("data-3", 1), ("data-2", 1)]
    assert newest[0].aliases == ["production"]
    assert (datasets.count(P), datasets.count(P, name="data-1")) == (5, 2)
    # the whole list keeps its order: by name, newest version first
    assert [(d.name, d.version) for d in datasets.list(P)][:3] == [
        ("data-0", 1),
        ("data-1", 2),
        ("data-1", 1),
    ]


def test_latest_gives_the_newest_version_of_each_name(admin: Any) -> None:
    prompts = admin.registry.prompts
    for text in ("one", "two", "three"):
        prompts.register(P, "b-greet", template=text)
    prompts.register(P, "a-help", template="help")
    latest = prompts.list(P, latest=True)
    assert [(p.name, p.version, p.template["template"]) for p in latest] == [
        ("a-help", 1, "help"),
        ("b-greet", 3, "three"),
    ]
    assert prompts.list(P, latest=True, name="b-greet")[0].version == 3


def test_adapters_and_deployments_in_a_limited_list_name_what_they_point_at(admin: Any) -> None:
    run = admin.registry.runs.start(P, "train")
    run.finish()
    for name in ("a", "b"):
        admin.registry.adapters.register(
            P, name, base_model="base", rank=8, alpha=16.0, target_modules=["q_proj"], run=run.id
        )
    admin.registry.deployments.create(P, "bot", model="base", adapter="b")
    adapters = admin.registry.adapters.list(P, limit=1)
    assert [(a.name, a.base_model, a.run) for a in adapters] == [("b", "model:base@1", run.id)]
    revision = admin.registry.deployments.list(P, limit=1)[0]
    assert (revision.model, revision.adapter) == ("model:base@1", "adapter:b@1")
    assert admin.registry.evals.list(P, limit=1) == []
    assert admin.registry.evals.count(P) == 0


@pytest.mark.parametrize("limit", [0, -1, True, 2.5])
def test_a_limit_that_is_not_a_positive_whole_number_is_refused(admin: Any, limit: Any) -> None:
    for api in (admin.registry.runs, admin.registry.datasets, admin.registry.evals):
        with pytest.raises(ValidationError) as caught:
            api.list(P, limit=limit)
        assert caught.value.field == "limit"
