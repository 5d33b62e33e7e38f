"""The Hub's evaluation pages over plain HTTP: eval runs with their means and confidence
intervals, one run, two runs compared with the paired test (the same numbers as
``eval.compare_with``, which ``genai eval compare`` prints) and their rows side by side;
each route signed out, in another project, as a viewer, and with untrusted texts escaped.

The runs are real: ``eval.run`` through the test gateway against fake deployments.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _hub_world import CANDIDATE_REPLY, XSS, EvalRuns, HubWorld, add_eval_runs, make_hub_world

import eval as ev
from eval._report_svg import fmt, fmt_p

pytestmark = pytest.mark.sqlite_only  # the Hub runs no SQL of its own


@pytest.fixture
def world(
    platform: Callable[..., Any], settings: Any, gateway_server: Callable[..., Any]
) -> HubWorld:
    return make_hub_world(platform, settings, gateway_server)


@pytest.fixture
def runs(world: HubWorld, tmp_path: Path) -> EvalRuns:
    return add_eval_runs(world, tmp_path / "suite")


def _pages(runs: EvalRuns) -> list[str]:
    return [
        "/hub/p/{p}/evals",
        f"/hub/p/{{p}}/evals/{runs.candidate}",
        f"/hub/p/{{p}}/evals/compare?a={runs.baseline}&b={runs.candidate}",
    ]


def test_eval_pages_are_for_the_projects_members_only(world: HubWorld, runs: EvalRuns) -> None:
    with world.client() as http:
        for page in _pages(runs):
            reply = http.get(page.format(p="shop"))
            assert reply.status_code == 303, page
            assert reply.headers["location"].startswith("/hub/signin?next="), page
    with world.signed_in(world.owner) as shop, world.signed_in(world.outsider) as bank:
        for page in _pages(runs):
            assert shop.get(page.format(p="shop")).status_code == 200, page
            theirs, nobody = shop.get(page.format(p="bank")), shop.get(page.format(p="nope"))
            assert theirs.status_code == nobody.status_code == 404, page
            assert theirs.text.replace("bank", "nope") == nobody.text, page
            assert bank.get(page.format(p="shop")).status_code == 404, page
        # another project's run named inside one's own project: the same 404 as no run
        unknown = "0" * len(runs.theirs)
        theirs = shop.get(f"/hub/p/shop/evals/{runs.theirs}")
        nobody = shop.get(f"/hub/p/shop/evals/{unknown}")
        assert theirs.status_code == nobody.status_code == 404
        assert theirs.text.replace(runs.theirs, unknown) == nobody.text
        compare = f"/hub/p/shop/evals/compare?a={runs.theirs}&b={runs.candidate}"
        assert shop.get(compare).status_code == 404
        assert bank.get(f"/hub/p/bank/evals/{runs.theirs}").status_code == 200
    with world.signed_in(world.viewer) as viewer:  # reading evaluations is a viewer's right
        for page in _pages(runs):
            assert viewer.get(page.format(p="shop")).status_code == 200, page


def test_the_list_shows_each_runs_means_and_intervals(world: HubWorld, runs: EvalRuns) -> None:
    stored = world.admin.registry.evals.get("shop", runs.baseline).metrics["exact_match"]
    with world.signed_in(world.owner) as http:
        html = http.get("/hub/p/shop/evals").text
    assert runs.baseline in html and runs.candidate in html and runs.theirs not in html
    assert f"<strong>{fmt(stored['mean'])}</strong>" in html
    assert f"[{fmt(stored['low'])}, {fmt(stored['high'])}]" in html
    assert fmt(stored["mean"]) == "0.750"  # 6 of 8 rows answered "Paris"
    assert 'href="/hub/p/shop/evals/compare"' not in html  # the form is a GET of its own
    assert 'action="/hub/p/shop/evals/compare"' in html


def test_one_run_shows_its_estimates_and_their_chart(world: HubWorld, runs: EvalRuns) -> None:
    summary, _ = ev.load_run(world.admin, "shop", runs.baseline)
    estimate = summary.metrics["token_f1"].estimate
    with world.signed_in(world.owner) as http:
        html = http.get(f"/hub/p/shop/evals/{runs.baseline}").text
    assert f"[{fmt(estimate.low)}, {fmt(estimate.high)}]" in html
    assert html.count('<figure class="ci"') == len(summary.metrics)
    assert 'data-metric="exact_match"' in html and "<rect" in html  # the bar, drawn
    assert f'<option value="{runs.candidate}">' in html  # the runs to compare it with


def test_two_runs_compared_with_the_paired_test_and_row_by_row(
    world: HubWorld, runs: EvalRuns
) -> None:
    cand, _ = ev.load_run(world.admin, "shop", runs.candidate)
    comparisons, _ = ev.compare_with(world.admin, "shop", cand, runs.baseline)
    exact = next(c for c in comparisons if c.metric == "exact_match")
    assert (exact.test, exact.verdict) == ("mcnemar", "worse")  # 6 discordant rows
    with world.signed_in(world.owner) as http:
        html = http.get(f"/hub/p/shop/evals/compare?a={runs.baseline}&b={runs.candidate}").text
    row = html[html.index('<tr data-metric="exact_match">') :]
    row = row[: row.index("</tr>")]
    assert f'<td class="num p-value">{fmt_p(exact.p_value)}</td>' in row
    assert fmt(exact.diff, signed=True) in row and "[" in row  # the difference and its CI
    assert 'class="verdict v-worse"' in row
    assert html.count('class="row-pair"') == 8  # every row, side by side
    # the candidate's answer, a payload, is text; the question's payload too
    assert "<img src=x" not in html and "&lt;img src=x onerror" in html
    assert XSS[3] not in html and "&lt;/textarea&gt;&lt;script&gt;" in html
    assert "<ins>" in html and "<del>Paris</del>" in html  # words diffed, as the report does
    assert CANDIDATE_REPLY.split()[0] in html


def test_bad_comparisons_are_named(world: HubWorld, runs: EvalRuns) -> None:
    with world.signed_in(world.owner) as http:
        reply = http.get(f"/hub/p/shop/evals/compare?b={runs.candidate}")
        assert reply.status_code == 400 and "a: Field required" in reply.text
        reply = http.get(f"/hub/p/shop/evals/compare?a={'x' * 101}&b={runs.candidate}")
        assert reply.status_code == 400
        reply = http.get(f"/hub/p/shop/evals/compare?a=nowhere&b={runs.candidate}")
        assert reply.status_code == 404 and "no finished eval run" in reply.text
