"""The Hub in a real browser (Debian's chromium through Playwright): sign in with a key,
open every page, chat with a deployment and watch the answer arrive while the model is
still writing it, and see untrusted texts (prompt text, descriptions, model output) shown
as text: no payload ever runs.

Skipped where chromium or playwright is missing; failed under CI=true.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _browser import chromium
from _clocks import wait_until
from _hub_upstream import GatedUpstream
from _hub_world import (
    REPLY,
    XSS,
    HubWorld,
    add_eval_runs,
    make_agent_world,
    make_docs_world,
    make_hub_world,
    playground_world,
)
from sqlalchemy import select

from genai.store import schema as t
from genai.testing import running_server

pytestmark = pytest.mark.sqlite_only  # the Hub runs no SQL of its own

WAIT_MS = 30_000  # a bound on each wait for the page, not a speed claim


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as browser:
        yield browser


@pytest.fixture
def world(
    platform: Callable[..., Any], settings: Any, gateway_server: Callable[..., Any]
) -> HubWorld:
    return make_hub_world(platform, settings, gateway_server)


class Watched:
    """A page and what it did that it must not: dialogs (a payload ran), script errors,
    requests to another origin."""

    def __init__(self, browser: Any, origin: str) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.page.set_default_timeout(WAIT_MS)

        def dialog(dialog: Any) -> None:
            self.problems.append(f"dialog: {dialog.message}")
            dialog.dismiss()

        def request(r: Any) -> None:
            if not r.url.startswith(origin + "/"):
                self.problems.append(f"request elsewhere: {r.url}")

        self.page.on("dialog", dialog)
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on(
            "console",
            lambda m: self.problems.append(f"console: {m.text}") if m.type == "error" else None,
        )
        self.page.on("request", request)
        self.page.on(
            "response",
            lambda r: (
                self.problems.append(f"{r.status}: {r.url}")
                if r.status >= 400 and "/hub/p/" in r.url
                else None
            ),
        )

    def close(self) -> None:
        self.context.close()


def sign_in(watched: Watched, world: HubWorld, key: str) -> None:
    page = watched.page
    page.goto(world.url + "/hub/")
    assert page.url.startswith(world.url + "/hub/signin")
    page.fill("#key", key)
    page.click("button[type=submit]")
    page.wait_for_url(world.url + "/hub/p/shop")


def no_markup_from_payloads(page: Any) -> None:
    """None of the payloads became an element."""
    found = page.evaluate(
        """() => [
            document.querySelectorAll('main script, script:not([src])').length,
            document.querySelectorAll('img[src="x"], svg[onload], [onerror], [onload]').length,
        ]"""
    )
    assert found == [0, 0], found


def test_sign_in_and_open_every_page(browser: Any, world: HubWorld) -> None:
    watched = Watched(browser, world.url)
    page = watched.page
    try:
        sign_in(watched, world, world.owner)
        assert page.locator("h1").inner_text() == "shop"
        assert XSS[0] in page.locator("main").inner_text()  # the description, as text
        labels = (
            "Deployments",
            "Prompts",
            "Registry",
            "Knowledge",
            "Usage",
            "Evaluations",
            "Agents",
            "Audit",
            "Overview",
        )
        for label in labels:
            page.click(f"nav >> text={label}")
            page.wait_for_load_state("load")
            assert page.locator("nav [aria-current=page]").inner_text() == label
            no_markup_from_payloads(page)
        page.click("nav >> text=Prompts")
        page.click("main >> text=greet")
        text = page.locator("main").inner_text()
        assert XSS[2].split(" ")[0] in text and "xss-textarea" in text
        no_markup_from_payloads(page)
        page.select_option("#label-version", "1")
        page.click("button:has-text('Move label')")
        page.wait_for_url("**/prompts/greet#labels")
        assert "production" in page.locator("#v1").inner_text()  # the label moved to v1
        page.click("button:has-text('Diff')")
        page.wait_for_url("**/diff?a=1&b=2")
        assert page.locator(".d-add").count() >= 1 and page.locator(".d-del").count() >= 1
        page.click("nav >> text=Registry")
        page.click("main >> text=faq@1")
        assert XSS[1] in page.locator("main").inner_text()  # a dataset row, as text
        no_markup_from_payloads(page)
        page.click("button:has-text('Sign out')")
        page.wait_for_url("**/hub/signin")
        page.goto(world.url + "/hub/p/shop/usage")
        assert "/hub/signin?next=" in page.url
    finally:
        watched.close()
    assert watched.problems == []


def test_compare_two_eval_runs_and_see_the_interval_and_p_value(
    browser: Any, world: HubWorld, tmp_path: Path
) -> None:
    import eval as ev
    from eval._report_svg import fmt_p

    runs = add_eval_runs(world, tmp_path / "suite")
    cand, _ = ev.load_run(world.admin, "shop", runs.candidate)
    comparisons, _ = ev.compare_with(world.admin, "shop", cand, runs.baseline)
    exact = next(c for c in comparisons if c.metric == "exact_match")
    watched = Watched(browser, world.url)
    page = watched.page
    try:
        sign_in(watched, world, world.owner)
        page.click("nav >> text=Evaluations")
        page.wait_for_url("**/hub/p/shop/evals")
        assert runs.baseline in page.locator("main table").inner_text()
        page.select_option("#cmp-a", runs.baseline)
        page.select_option("#cmp-b", runs.candidate)
        page.click("button:has-text('Compare')")
        page.wait_for_url("**/evals/compare?**")
        row = page.locator('tr[data-metric="exact_match"]')
        assert row.locator(".p-value").inner_text() == fmt_p(exact.p_value)
        assert row.locator(".diff").inner_text().count("[") == 1  # the difference's CI
        assert row.locator(".verdict").inner_text() == "worse"
        charts = page.locator("figure.ci")
        assert charts.count() == len(comparisons)
        assert page.locator("figure.ci rect.bar").count() == 2 * len(comparisons)
        assert page.locator("figure.ci line.err").count() >= 2  # CIs drawn as whiskers
        assert page.locator("article.row-pair").count() == 8
        assert XSS[1] in page.locator("article.row-pair").first.inner_text()  # as text
        no_markup_from_payloads(page)
        page.click(f"main p a:has-text('{runs.baseline}')")
        page.wait_for_url(f"**/evals/{runs.baseline}")
        assert page.locator("figure.ci").count() >= 2
    finally:
        watched.close()
    assert watched.problems == []


def test_the_playground_runs_two_versions_side_by_side(
    browser: Any, platform: Callable[..., Any], settings: Any, gateway_server: Callable[..., Any]
) -> None:
    with playground_world(platform, settings, gateway_server) as (world, echo):
        watched = Watched(browser, world.url)
        page = watched.page
        try:
            sign_in(watched, world, world.owner)
            page.goto(world.url + "/hub/p/shop/prompts/greet")
            page.click("main >> text=Run versions side by side in the playground")
            page.select_option("#pg-deployment", "echo")
            page.fill("#pg-var-1", "Where is my order? " + XSS[1])
            page.click("button:has-text('Run both')")
            page.locator("section.side").first.wait_for()
            answers = page.locator("section.side .answer")
            assert answers.count() == 2
            assert "You help kindly" in answers.nth(1).inner_text()
            assert XSS[1] in answers.nth(0).inner_text()  # the model's echo, as text
            no_markup_from_payloads(page)
        finally:
            watched.close()
        assert len(echo.bodies) == 2
    assert watched.problems == []


def test_chat_shows_the_models_answer_as_text(browser: Any, world: HubWorld) -> None:
    watched = Watched(browser, world.url)
    page = watched.page
    try:
        sign_in(watched, world, world.owner)
        page.goto(world.url + "/hub/p/shop/chat/chat")
        page.fill("#chat-input", "Say hello")
        page.click("#chat-form button[type=submit]")
        answer = page.locator(".msg-assistant[data-done=true] .text")
        answer.wait_for()
        assert answer.inner_text() == REPLY  # every payload shown as the text it is
        pieces = int(page.locator(".msg-assistant").get_attribute("data-pieces") or 0)
        assert pieces > 5  # appended piece by piece as the stream came
        no_markup_from_payloads(page)
        page.click(".msg-assistant button[aria-label=Helpful]")
        page.locator(".msg-assistant[data-feedback=up]").wait_for()
        assert "Thanks" in page.locator(".msg-assistant .thumbs").inner_text()
        # a second turn sends the conversation so far
        page.fill("#chat-input", "Again")
        page.click("#chat-form button[type=submit]")
        page.locator(".msg-assistant[data-done=true]").nth(1).wait_for()
        assert page.locator(".msg-user").count() == 2
        # the conversation is kept for the tab's session, shown again as text
        page.reload()
        page.locator(".msg-assistant[data-restored=true]").nth(1).wait_for()
        assert page.locator(".msg-user").count() == 2
        assert page.locator(".msg-assistant .text").first.inner_text() == REPLY
        no_markup_from_payloads(page)
        page.click("button:has-text('Sign out')")  # forgets it
        sign_in(watched, world, world.owner)
        page.goto(world.url + "/hub/p/shop/chat/chat")
        assert page.locator(".msg").count() == 0
    finally:
        watched.close()
    assert watched.problems == []
    assert wait_until(lambda: feedback_rows(world) == [("chat", 1.0)], timeout=20)


def feedback_rows(world: HubWorld) -> list[tuple[str, float]]:
    with world.admin.store.session() as s:
        return [(r.deployment, r.score) for r in s.scalars(select(t.Feedback))]


def test_chat_shows_tokens_before_the_answer_is_complete(browser: Any, world: HubWorld) -> None:
    upstream = GatedUpstream(first="Hello from", rest="the gated model.")
    with running_server(upstream.app()) as base:
        spec = {"targets": [{"name": "up", "url": base + "/v1", "model": "gated"}]}
        world.admin.registry.deployments.create("shop", "gated", spec=spec)
        watched = Watched(browser, world.url)
        page = watched.page
        try:
            sign_in(watched, world, world.owner)
            page.goto(world.url + "/hub/p/shop/chat/gated")
            page.fill("#chat-input", "Who are you?")
            page.click("#chat-form button[type=submit]")
            partial = page.locator(".msg-assistant .text")
            page.wait_for_function(
                "() => (document.querySelector('.msg-assistant .text') || {}).textContent"
                " === 'Hello from '"
            )
            assert page.locator(".msg-assistant").get_attribute("data-done") is None
            upstream.gate.set()  # the model finishes only now
            page.locator(".msg-assistant[data-done=true]").wait_for()
            assert partial.inner_text().strip() == "Hello from the gated model."
        finally:
            upstream.gate.set()
            watched.close()
    assert watched.problems == []


def test_the_docs_bot_answers_in_the_browser_with_citations_to_open(
    browser: Any,
    platform: Callable[..., Any],
    settings: Any,
    gateway_server: Callable[..., Any],
    embedder: Any,
    tmp_path: Path,
) -> None:
    world = make_docs_world(platform, settings, gateway_server, embedder, tmp_path / "docs")
    watched = Watched(browser, world.url)
    page = watched.page
    try:
        sign_in(watched, world, world.owner)
        page.click("nav >> text=Deployments")
        page.click("text=Chat with docs-bot")
        page.fill("#chat-input", "How long do refunds take?")
        page.click("#chat-form button[type=submit]")
        page.locator(".msg-assistant[data-done=true]").wait_for()
        assert "five business days" in page.locator(".msg-assistant .text").inner_text()
        citation = page.locator(".citations details").first
        assert "refunds.md" in citation.locator("summary").inner_text()
        assert not citation.locator("blockquote").is_visible()  # closed until opened
        citation.locator("summary").click()
        assert "five business days" in citation.locator("blockquote").inner_text()
        # the search box finds the same chunk
        page.click("nav >> text=Knowledge")
        page.click("main >> text=docs")
        page.fill("#q", "When does the support desk open?")
        page.click("button:has-text('Search')")
        page.wait_for_url("**/knowledge/docs?q=*")
        assert "9 am" in page.locator(".results").inner_text()
    finally:
        watched.close()
    assert watched.problems == []


def test_an_agents_chat_shows_its_tool_calls_and_the_inbox_decides(
    browser: Any,
    platform: Callable[..., Any],
    settings: Any,
    gateway_server: Callable[..., Any],
) -> None:
    from agents import AgentRunner

    world, maintainer, run_id = make_agent_world(platform, settings, gateway_server)
    watched = Watched(browser, world.url)
    page = watched.page
    try:
        page.goto(world.url + "/hub/")
        page.fill("#key", maintainer)
        page.click("button[type=submit]")
        page.wait_for_url(world.url + "/hub/p/shop")
        page.click("nav >> text=Agents")
        row = page.locator("tr", has=page.locator("button:has-text('Approve')"))
        assert run_id in row.inner_text() and "weather" in row.inner_text()
        row.locator("button:has-text('Approve')").click()
        page.wait_for_url("**/agents?decided=*")
        assert "Done: approved c1." in page.locator("main").inner_text()
        runner = AgentRunner(world.admin, "shop", gateway=world.url + "/v1", api_key="")
        assert wait_until(lambda: runner.get(run_id).status == "completed", 30)
        # the agent's chat: its tool call shows as a note, and it waits for a person again
        page.goto(world.url + "/hub/p/shop/chat/helper")
        page.fill("#chat-input", "And in Oslo?")
        page.click("#chat-form button[type=submit]")
        page.locator(".msg-assistant[data-done=true]").wait_for()
        assert page.locator(".msg-assistant .agent-event").inner_text() == "tool call: weather"
        assert "waiting for approval" in page.locator(".msg-assistant .text").inner_text()
    finally:
        watched.close()
    assert watched.problems == []
