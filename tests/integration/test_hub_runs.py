"""The Hub's run page (a fine-tuning run's loss curves), the drawn lineage graph and agent
runs as trees, over plain HTTP: what they show, untrusted texts escaped, and another
project's run or graph the same 404 as none.

The run is a real registry run with metrics logged per step, as the fine-tuning package
logs them (``loss``, ``eval_loss``, ``lr``); its adapter, deployment and eval run are
registered on it, so the lineage is dataset → run → adapter → deployment → eval run.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from _hub_runs_world import HOSTILE_METRIC, add_agent_run, add_training_run
from _hub_world import XSS, HubWorld, make_hub_world

pytestmark = pytest.mark.sqlite_only  # the Hub runs no SQL of its own


@pytest.fixture
def world(
    platform: Callable[..., Any], settings: Any, gateway_server: Callable[..., Any]
) -> HubWorld:
    return make_hub_world(platform, settings, gateway_server)


def _polyline_points(html: str, metric: str) -> list[tuple[float, float]]:
    found = re.search(
        rf'<g class="series" data-metric="{re.escape(metric)}">.*?points="([^"]+)"', html
    )
    assert found, metric
    return [tuple(map(float, p.split(","))) for p in found.group(1).split()]  # type: ignore[misc]


def test_a_runs_page_draws_its_loss_curves(world: HubWorld) -> None:
    training = add_training_run(world, "shop")
    with world.signed_in(world.owner) as http:
        registry = http.get("/hub/p/shop/registry").text
        assert f'href="/hub/p/shop/registry/runs/{training.run}"' in registry
        assert 'href="/hub/p/shop/registry/lineage?ref=adapter%3Asupport%401"' in registry
        reply = http.get(f"/hub/p/shop/registry/runs/{training.run}")
        also = http.get(f"/hub/p/shop/registry/runs/run:{training.run}")
    assert reply.status_code == also.status_code == 200, reply.text
    html = reply.text
    # loss and eval_loss share a chart; lr has its own: each a line of its own points
    assert 'aria-label="loss and eval_loss by step"' in html
    assert 'aria-label="lr by step"' in html
    loss, eval_loss = _polyline_points(html, "loss"), _polyline_points(html, "eval_loss")
    assert len(loss) == 20 and len(eval_loss) == 4
    assert [x for x, _ in loss] == sorted(x for x, _ in loss)  # steps left to right
    assert loss[0][1] < loss[-1][1]  # the loss falls: SVG's y grows downwards
    assert len(_polyline_points(html, "lr")) == 20
    # every value is in the table too, as `genai registry runs show` has them
    points = world.admin.registry.runs.metrics("shop", training.run, key="loss")
    assert f"{points[0].value:.4g}" in html and len(points) == 20
    # untrusted texts: a parameter and a metric name, shown as text
    assert XSS[0] not in html and HOSTILE_METRIC not in html
    assert "&lt;script&gt;alert(" in html
    assert "<script>" not in html.split("</head>")[1].replace('<script src="', "")


def test_the_lineage_graph_links_every_node(world: HubWorld) -> None:
    training = add_training_run(world, "shop")
    with world.signed_in(world.owner) as http:
        run_html = http.get(f"/hub/p/shop/registry/runs/{training.run}").text
        reply = http.get(f"/hub/p/shop/registry/lineage?ref=adapter:{training.adapter}")
    assert reply.status_code == 200, reply.text
    html = reply.text
    nodes = dict(re.findall(r'<a href="([^"]+)" class="node[^"]*" data-node="([^"]+)"', html))
    by_node = {node: href for href, node in nodes.items()}
    assert by_node["dataset:faq@1"] == "/hub/p/shop/registry/datasets/faq?version=1"
    assert by_node[f"run:{training.run}"] == f"/hub/p/shop/registry/runs/{training.run}"
    assert f"adapter:{training.adapter}" in by_node
    assert by_node[f"deployment:{training.deployment}"] == "/hub/p/shop/deployments"
    assert by_node[f"eval:{training.eval}"] == f"/hub/p/shop/evals/{training.eval}"
    # laid out in layers: each arrow goes rightwards, dataset → run → adapter → … → eval
    xs = {
        node: float(m)
        for node, m in re.findall(
            r'data-node="([^"]+)"><title>[^<]*</title><rect x="([\d.]+)"', html
        )
    }
    chain = ["dataset:faq@1", f"run:{training.run}", f"adapter:{training.adapter}"]
    chain += [f"deployment:{training.deployment}", f"eval:{training.eval}"]
    assert [xs[n] for n in chain] == sorted(xs[n] for n in chain)
    assert len({xs[n] for n in chain}) == len(chain)
    assert 'class="node root"' in html and html.count("marker-end=") >= 5
    # base model → adapter spans two layers: routed past the run's column, not through it
    paths = re.findall(r'class="edge" d="([^"]+)"', html)
    assert sum(" L " in d for d in paths) == 1, paths
    # the run's page draws its own graph, the run outlined
    assert f'data-root="run:{training.run}"' in run_html
    assert "lineage-title" in run_html


def test_runs_and_graphs_of_another_project_are_404_like_none(world: HubWorld) -> None:
    mine = add_training_run(world, "shop")
    theirs = add_training_run(world, "bank")
    with world.signed_in(world.owner) as shop:
        assert shop.get(f"/hub/p/shop/registry/runs/{mine.run}").status_code == 200
        other = shop.get(f"/hub/p/shop/registry/runs/{theirs.run}")
        none = shop.get("/hub/p/shop/registry/runs/000000000000")
        assert other.status_code == none.status_code == 404
        assert other.text.replace(theirs.run, "000000000000") == none.text
        in_bank = shop.get(f"/hub/p/bank/registry/runs/{theirs.run}")
        nobody = shop.get(f"/hub/p/nope/registry/runs/{theirs.run}")
        assert in_bank.status_code == nobody.status_code == 404
        assert in_bank.text.replace("bank", "nope") == nobody.text
        graph = shop.get(f"/hub/p/bank/registry/lineage?ref=run:{theirs.run}")
        assert graph.status_code == 404 and theirs.run not in graph.text.split("<main")[0]
        assert shop.get(f"/hub/p/shop/registry/lineage?ref=run:{theirs.run}").status_code == 404
        # a hostile reference is refused, and shown as text
        hostile = shop.get("/hub/p/shop/registry/lineage", params={"ref": XSS[2]})
        assert hostile.status_code in (400, 404) and XSS[2] not in hostile.text
        path = shop.get("/hub/p/shop/registry/runs/" + "%3Cscript%3Ealert(1)%3C%2Fscript%3E")
        assert path.status_code == 404 and "<script>alert(1)" not in path.text
    with world.client() as http:  # signed out: to the sign-in page
        reply = http.get(f"/hub/p/shop/registry/runs/{mine.run}")
        assert reply.status_code == 303 and "/hub/signin" in reply.headers["location"]
    with world.signed_in(world.viewer) as viewer:  # reading the registry is a viewer's right
        assert viewer.get(f"/hub/p/shop/registry/runs/{mine.run}").status_code == 200


def test_agent_runs_are_trees_of_their_steps(world: HubWorld) -> None:
    run_id = add_agent_run(world, "shop")
    with world.signed_in(world.owner) as http, world.signed_in(world.outsider) as bank:
        html = http.get("/hub/p/shop/agents").text
        theirs = bank.get("/hub/p/bank/agents").text
    assert f'id="run-{run_id}"' in html and run_id not in theirs
    steps = re.findall(r'data-kind="(\w+)" data-name="([^"]+)" data-depth="(\d)"', html)
    # the sub-agent's model and tool calls nested under the call that asked it, in order
    assert steps == [
        ("model", "model", "1"),
        ("tool", "weather", "1"),
        ("agent", "ask_researcher", "1"),
        ("model", "model", "2"),
        ("tool", "search", "2"),
        ("model", "model", "1"),
    ]
    assert "by researcher" in html and "2 steps under it" in html
    assert XSS[1] not in html and "&lt;img src=x onerror" in html  # a tool result, as text


def test_handoffs_nest_and_return_in_the_tree() -> None:
    """A handoff's agent's steps sit under the handoff until control comes back; a step of
    an agent nothing started stays at the top."""
    from agents._records import StepInfo
    from apps.hub._trees import tree_of

    raw = [
        ("model", "model", "triage"),
        ("handoff", "transfer_to_billing", "triage"),
        ("model", "model", "billing"),
        ("agent", "ask_ledger", "billing"),
        ("tool", "lookup", "ledger"),
        ("handoff", "transfer_to_triage", "billing"),
        ("model", "model", "triage"),
        ("tool", "orphan", "stray"),
    ]
    steps = [StepInfo(i, k, n, a, "ok", {}, 0.0) for i, (k, n, a) in enumerate(raw)]
    tree = tree_of(steps, "triage")

    def shape(nodes: list[Any]) -> list[Any]:
        return [(n.name, n.agent, shape(n.children)) for n in nodes]

    assert shape(tree) == [
        ("model", "triage", []),
        (
            "transfer_to_billing",
            "triage",
            [
                ("model", "billing", []),
                ("ask_ledger", "billing", [("lookup", "ledger", [])]),
                ("transfer_to_triage", "billing", []),
            ],
        ),
        ("model", "triage", []),
        ("orphan", "stray", []),
    ]
    assert tree[1].count == 5


def test_a_lineage_box_opens_its_page_in_the_browser(world: HubWorld) -> None:
    """The boxes are SVG links a browser follows (by mouse and by keyboard)."""
    from _browser import chromium

    training = add_training_run(world, "shop")
    with chromium() as browser:
        page = browser.new_page()
        page.set_default_timeout(30_000)  # a bound on each wait, not a speed claim
        page.goto(world.url + "/hub/signin")
        page.fill("#key", world.owner)
        page.click("button[type=submit]")
        page.wait_for_url(world.url + "/hub/p/shop")
        page.goto(world.url + f"/hub/p/shop/registry/runs/{training.run}")
        page.click('a.node[data-node="dataset:faq@1"]')
        page.wait_for_url("**/registry/datasets/faq?version=1")
        page.go_back()
        page.focus(f'a.node[data-node="eval:{training.eval}"]')
        page.keyboard.press("Enter")
        page.wait_for_url(f"**/evals/{training.eval}")
