"""The one lineage graph: dataset → run → adapter → deployment → eval run, and prompt
version → eval run, on real SQLite and PostgreSQL, kept inside its project."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from genai.errors import NotFoundError, ValidationError

P = "demo"


@dataclass
class Chain:
    run: str
    eval: str
    edges: list[tuple[str, str, str]]  # (parent, child, relation)

    @property
    def nodes(self) -> list[str]:
        return sorted({n for edge in self.edges for n in edge[:2]})


def _build(client, project: str) -> Chain:
    registry = client.registry
    registry.models.register(project, "base", source="org/base-model", license="apache-2.0")
    registry.datasets.register(project, "train", [{"q": "a", "a": "b"}])
    with registry.runs.start(project, "sft", datasets=["train"], base_model="base", code="") as run:
        run.log({"loss": 1.0}, step=0)
    registry.adapters.register(
        project,
        "support",
        base_model="base",
        run=run.id,
        rank=8,
        alpha=16,
        target_modules=["q_proj"],
    )
    registry.deployments.create(project, "svc", model="base", adapter="support")
    registry.prompts.register(project, "greet", template="Answer: {q}")
    ev = registry.evals.record(
        project,
        "faq-suite",
        metrics={"accuracy": 0.9},
        inputs=["deployment:svc@1", "prompt:greet@1"],
    )
    r, e = f"run:{run.id}", f"eval:{ev.id}"
    return Chain(
        run.id,
        ev.id,
        [
            ("dataset:train@1", r, "input"),
            ("model:base@1", r, "base model"),
            ("model:base@1", "adapter:support@1", "base model"),
            (r, "adapter:support@1", "produced"),
            ("model:base@1", "deployment:svc@1", "serves"),
            ("adapter:support@1", "deployment:svc@1", "serves"),
            ("deployment:svc@1", e, "evaluated"),
            ("prompt:greet@1", e, "evaluated"),
        ],
    )


@pytest.fixture
def admin(platform):
    client = platform()
    client.projects.create(P)
    return client


@pytest.fixture
def chain(admin) -> Chain:
    return _build(admin, P)


def _closure(edges, start: str, *, upward: bool) -> set[str]:
    found: set[str] = set()
    frontier = [start]
    while frontier:
        node = frontier.pop()
        for parent, child, _ in edges:
            nxt = parent if upward else child
            if (child if upward else parent) == node and nxt not in found:
                found.add(nxt)
                frontier.append(nxt)
    return found


def _expected_edges(
    chain: Chain, node: str, up: set[str], down: set[str]
) -> list[tuple[str, str, str]]:
    wanted = [e for e in chain.edges if e[1] in up | {node} or e[0] in down | {node}]
    return sorted(wanted, key=lambda e: (e[0], e[1]))


def _edges(graph) -> list[tuple[str, str, str]]:
    return [(e.parent, e.child, e.relation) for e in graph.edges]


def test_ancestors_descendants_and_edges_of_every_node(admin, chain: Chain) -> None:
    r, e = f"run:{chain.run}", f"eval:{chain.eval}"
    expected = {
        "dataset:train@1": (set(), {r, "adapter:support@1", "deployment:svc@1", e}),
        "model:base@1": (set(), {r, "adapter:support@1", "deployment:svc@1", e}),
        r: ({"dataset:train@1", "model:base@1"}, {"adapter:support@1", "deployment:svc@1", e}),
        "adapter:support@1": ({r, "dataset:train@1", "model:base@1"}, {"deployment:svc@1", e}),
        "deployment:svc@1": ({"adapter:support@1", r, "dataset:train@1", "model:base@1"}, {e}),
        "prompt:greet@1": (set(), {e}),
        e: (
            {
                "deployment:svc@1",
                "prompt:greet@1",
                "adapter:support@1",
                r,
                "dataset:train@1",
                "model:base@1",
            },
            set(),
        ),
    }
    assert sorted(expected) == chain.nodes
    for node, (up, down) in expected.items():
        # the table above agrees with the chain's edges
        assert (
            _closure(chain.edges, node, upward=True),
            _closure(chain.edges, node, upward=False),
        ) == (up, down), node
        graph = admin.registry.lineage(P, node)
        assert graph.root == node
        assert sorted(graph.ancestors) == sorted(up), node  # sorted(): no duplicates either
        assert sorted(graph.descendants) == sorted(down), node
        assert _edges(graph) == _expected_edges(chain, node, up, down), node


def test_references_resolve_to_their_version(admin, chain: Chain) -> None:
    lineage = admin.registry.lineage
    assert lineage(P, "model:base").root == "model:base@1"
    admin.registry.aliases.set(P, "deployment:svc@1", "live")
    assert lineage(P, "deployment:svc@live").root == "deployment:svc@1"
    with pytest.raises(ValidationError):
        lineage(P, "base")  # the kind is not known from context
    with pytest.raises(NotFoundError):
        lineage(P, "model:base@2")


def test_inputs_of_runs_and_evals_are_their_parents(admin, chain: Chain) -> None:
    assert admin.registry.runs.get(P, chain.run).inputs == ["dataset:train@1", "model:base@1"]
    assert admin.registry.evals.get(P, chain.eval).inputs == ["deployment:svc@1", "prompt:greet@1"]
    assert admin.registry.adapters.get(P, "support").run == chain.run


def test_new_versions_start_their_own_lineage(admin, chain: Chain) -> None:
    registry = admin.registry
    registry.datasets.register(P, "train", [{"q": "c", "a": "d"}])
    registry.deployments.create(P, "svc", model="base")
    assert registry.lineage(P, "dataset:train@2").descendants == []
    graph = registry.lineage(P, "deployment:svc@2")
    assert (graph.ancestors, graph.descendants) == (["model:base@1"], [])
    assert _edges(graph) == [("model:base@1", "deployment:svc@2", "serves")]
    # the first revision and its evaluation are unchanged
    assert f"eval:{chain.eval}" in registry.lineage(P, "deployment:svc@1").descendants
    assert "deployment:svc@2" in registry.lineage(P, "model:base@1").descendants


def test_depth_limits_the_hops(admin, chain: Chain) -> None:
    e, r = f"eval:{chain.eval}", f"run:{chain.run}"
    lineage = admin.registry.lineage
    zero = lineage(P, e, depth=0)
    assert (zero.ancestors, zero.descendants, zero.edges) == ([], [], [])
    one = lineage(P, e, depth=1)
    assert sorted(one.ancestors) == ["deployment:svc@1", "prompt:greet@1"]
    assert _edges(one) == [
        ("deployment:svc@1", e, "evaluated"),
        ("prompt:greet@1", e, "evaluated"),
    ]
    two = lineage(P, e, depth=2)
    assert sorted(two.ancestors) == [
        "adapter:support@1",
        "deployment:svc@1",
        "model:base@1",
        "prompt:greet@1",
    ]
    assert len(two.edges) == 4
    everything = set(lineage(P, e).ancestors)
    assert set(lineage(P, e, depth=3).ancestors) == everything - {"dataset:train@1"}
    assert set(lineage(P, e, depth=4).ancestors) == everything
    down = lineage(P, "dataset:train@1", depth=2)
    assert sorted(down.descendants) == ["adapter:support@1", r]
    assert _edges(down) == [
        ("dataset:train@1", r, "input"),
        (r, "adapter:support@1", "produced"),
    ]


def test_lineage_stays_inside_its_project(admin, platform, chain: Chain) -> None:
    admin.projects.create("other")
    other = _build(admin, "other")  # the same names, in another project
    mine = admin.registry.lineage(P, "model:base@1")
    theirs = admin.registry.lineage("other", "model:base@1")
    assert f"run:{other.run}" not in mine.descendants + [e.child for e in mine.edges]
    assert f"run:{chain.run}" not in theirs.descendants + [e.child for e in theirs.edges]
    assert sorted(theirs.descendants) == sorted(
        [f"run:{other.run}", "adapter:support@1", "deployment:svc@1", f"eval:{other.eval}"]
    )
    # one project's runs and evals cannot be named from another
    with pytest.raises(NotFoundError):
        admin.registry.lineage("other", f"run:{chain.run}")
    with pytest.raises(NotFoundError):
        admin.registry.evals.record("other", "suite", metrics={}, inputs=[f"eval:{chain.eval}"])
    with pytest.raises(NotFoundError):
        admin.registry.adapters.register(
            "other", "x", base_model="base", run=chain.run, rank=8, alpha=16, target_modules=["q"]
        )


def test_non_members_cannot_see_a_projects_lineage(admin, platform, chain: Chain) -> None:
    admin.projects.add_member("demo", "val", role="viewer")
    viewer = platform("val")
    assert viewer.registry.lineage(P, "prompt:greet@1").descendants == [f"eval:{chain.eval}"]
    admin.projects.remove_member(P, "val")
    with pytest.raises(NotFoundError):
        viewer.registry.lineage(P, "prompt:greet@1")
    with pytest.raises(NotFoundError):
        viewer.registry.lineage(P, "prompt:never-existed@1")


def test_eval_with_no_inputs_stands_alone(admin) -> None:
    ev = admin.registry.evals.record(P, "smoke", metrics={"ok": True})
    graph = admin.registry.lineage(P, ev.ref)
    assert (graph.root, graph.ancestors, graph.descendants, graph.edges) == (ev.ref, [], [], [])
    assert ev.inputs == [] and ev.status == "finished" and ev.ended_at is not None
