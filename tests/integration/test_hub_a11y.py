"""Every Hub page checked by axe-core in a real browser (Debian's chromium through
Playwright): signed in, each page of a project that has something on every page (its
deployments, prompts, a dataset, a knowledge base, usage, eval runs, a fine-tuning run with
its loss curves and lineage, an agent run), and the sign-in page. Any violation of impact
"serious" or "critical" fails the test, listed page by page.

axe-core comes from the ``axe-playwright-python`` package (the ``dev`` extra), which ships
``axe.min.js`` (MPL-2.0): nothing is fetched at test time. Skipped where chromium,
playwright or that package is missing; failed under CI=true.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _browser import IN_CI, chromium
from _hub_runs_world import add_agent_run, add_training_run
from _hub_world import DOCS, HubWorld, add_eval_runs, make_hub_world

pytestmark = pytest.mark.sqlite_only  # the Hub runs no SQL of its own

WAIT_MS = 30_000  # a bound on each wait for the page, not a speed claim
#: The impacts that fail the test ("minor" and "moderate" are reported by axe, not failed).
FAILING = ("serious", "critical")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as browser:
        yield browser


def _axe() -> Any:
    try:
        from axe_playwright_python.sync_playwright import Axe  # type: ignore[import-untyped, unused-ignore]
    except ImportError as error:
        problem = f"axe-playwright-python is not installed ({error}): pip install -e '.[dev]'"
        if IN_CI:
            pytest.fail(problem)
        pytest.skip(problem)
    return Axe()


def _world(
    platform: Callable[..., Any],
    settings: Any,
    gateway_server: Callable[..., Any],
    embedder: Any,
    folder: Path,
) -> tuple[HubWorld, dict[str, str]]:
    """The hub world with something on every page; the paths of the pages with an id."""
    from rag import KnowledgeBases

    world = make_hub_world(platform, settings, gateway_server, embedder=embedder)
    runs = add_eval_runs(world, folder / "suite")
    kbs = KnowledgeBases(world.admin, embedder=embedder)
    kbs.create("shop", "docs", description="The shop's help pages")
    (folder / "docs").mkdir()
    for name, text in DOCS.items():
        (folder / "docs" / name).write_text(text, encoding="utf-8")
    kbs.get("shop", "docs").ingest([folder / "docs"])
    training = add_training_run(world, "shop")
    agent_run = add_agent_run(world, "shop")
    ids = {
        "eval": f"/hub/p/shop/evals/{runs.candidate}",
        "compare": f"/hub/p/shop/evals/compare?a={runs.baseline}&b={runs.candidate}",
        "run": f"/hub/p/shop/registry/runs/{training.run}",
        "lineage": f"/hub/p/shop/registry/lineage?ref=adapter:{training.adapter}",
        "agent": f"/hub/p/shop/agents#run-{agent_run}",
    }
    return world, ids


def _pages(ids: dict[str, str]) -> list[str]:
    return [
        "/hub/p/shop",
        "/hub/p/shop/deployments",
        "/hub/p/shop/prompts",
        "/hub/p/shop/prompts/greet",
        "/hub/p/shop/prompts/greet/diff?a=1&b=2",
        "/hub/p/shop/prompts/greet/playground",
        "/hub/p/shop/registry",
        "/hub/p/shop/registry/datasets/faq",
        ids["run"],
        ids["lineage"],
        "/hub/p/shop/knowledge",
        "/hub/p/shop/knowledge/docs?q=refunds",
        "/hub/p/shop/usage",
        "/hub/p/shop/evals",
        ids["eval"],
        ids["compare"],
        ids["agent"],
        "/hub/p/shop/audit",
        "/hub/p/shop/chat/chat",
        "/hub/p/shop/no-such-page",  # the error page
    ]


def _serious(results: Any) -> list[str]:
    """Each failing violation as one line: rule, impact, help and where (3 nodes at most)."""
    lines = []
    for v in results.response.get("violations", []):
        if v.get("impact") not in FAILING:
            continue
        where = "; ".join(", ".join(n.get("target", [])) for n in v.get("nodes", [])[:3])
        lines.append(f"{v['id']} ({v['impact']}): {v['help']} at {where}")
    return lines


def test_every_hub_page_has_no_serious_accessibility_violation(
    browser: Any,
    platform: Callable[..., Any],
    settings: Any,
    gateway_server: Callable[..., Any],
    embedder: Any,
    tmp_path: Path,
) -> None:
    axe = _axe()
    world, ids = _world(platform, settings, gateway_server, embedder, tmp_path)
    # axe is injected through the DevTools protocol; the pages' CSP stays as it is served
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    found: dict[str, list[str]] = {}
    try:
        page.goto(world.url + "/hub/signin")
        found["/hub/signin"] = _serious(axe.run(page))
        page.fill("#key", world.owner)
        page.click("button[type=submit]")
        page.wait_for_url(world.url + "/hub/p/shop")
        for path in _pages(ids):
            reply = page.goto(world.url + path)
            assert reply is not None
            expected = 404 if path.endswith("no-such-page") else 200
            assert reply.status == expected, (path, reply.status)
            found[path] = _serious(axe.run(page))
        # the chat page once an answer came: what chat.js drew (the message, its buttons)
        page.goto(world.url + "/hub/p/shop/chat/chat")
        page.fill("#chat-input", "Say hello")
        page.click("#chat-form button[type=submit]")
        page.locator(".msg-assistant[data-done=true]").wait_for()
        found["/hub/p/shop/chat/chat (answered)"] = _serious(axe.run(page))
    finally:
        context.close()
    problems = {path: lines for path, lines in found.items() if lines}
    report = "\n".join(f"{path}:\n  " + "\n  ".join(lines) for path, lines in problems.items())
    assert not problems, "axe-core found serious or critical violations:\n" + report


def test_the_check_fails_a_page_with_serious_violations(browser: Any) -> None:
    """The check itself: axe runs offline and a page without a language, a label or a
    link's name is caught (so an empty list above means clean pages, not a silent axe)."""
    axe = _axe()
    page = browser.new_page()
    try:
        page.set_content('<html><body><main><input id="q"><a href="/x"></a></main></body></html>')
        lines = _serious(axe.run(page))
    finally:
        page.close()
    rules = {line.split(" ")[0] for line in lines}
    assert {"html-has-lang", "label", "link-name"} <= rules, lines
