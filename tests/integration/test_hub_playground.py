"""The prompt playground over plain HTTP: two versions of a prompt run side by side on a
deployment, through the gateway's prompt stage as the session's key (the upstream sees each
version rendered), the answers (model output carrying payloads) shown as text, and bad
choices named. Signed out, other projects and CSRF: test_hub_http.py's matrix (PAGES, POSTS).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from _hub_upstream import EchoUpstream
from _hub_world import XSS, HubWorld, csrf_of, playground_world

pytestmark = pytest.mark.sqlite_only  # the Hub runs no SQL of its own

PAGE = "/hub/p/shop/prompts/greet/playground"


@pytest.fixture
def both(
    platform: Callable[..., Any], settings: Any, gateway_server: Callable[..., Any]
) -> Iterator[tuple[HubWorld, EchoUpstream]]:
    with playground_world(platform, settings, gateway_server) as made:
        yield made


@pytest.fixture
def world(both: tuple[HubWorld, EchoUpstream]) -> HubWorld:
    return both[0]


@pytest.fixture
def echo(both: tuple[HubWorld, EchoUpstream]) -> EchoUpstream:
    return both[1]


def _run(http: Any, html: str, **form: str) -> Any:
    return http.post(PAGE, data={"csrf": csrf_of(html), **form})


def test_two_versions_run_side_by_side_through_the_gateway(
    world: HubWorld, echo: EchoUpstream
) -> None:
    with world.signed_in(world.owner) as http:
        form = http.get(PAGE)
        assert form.status_code == 200
        assert 'name="var.question"' in form.text and '<option value="echo">' in form.text
        question = "Where is my order? " + XSS[0]
        reply = _run(http, form.text, a="1", b="2", deployment="echo", **{"var.question": question})
    assert reply.status_code == 200, reply.text
    html = reply.text
    first, second = html.index('data-version="1"'), html.index('data-version="2"')
    assert "You help &#34;&gt;&lt;svg" in html[first:second]
    assert "You help kindly" in html[second:] and "You help kindly" not in html[first:second]
    # the gateway rendered each version: the upstream got the messages, not the prompt's name
    systems = sorted(body["messages"][0]["content"] for body in echo.bodies)
    assert systems == ["You help " + XSS[2], "You help kindly " + XSS[3]]
    assert all(body["messages"][-1]["content"] == question for body in echo.bodies)
    assert all("prompt" not in body and "variables" not in body for body in echo.bodies)
    # every payload came back in the answers, and each is text on the page
    for payload in (XSS[0], XSS[2], XSS[3]):
        assert payload not in html
    assert "&lt;script&gt;alert(&#34;xss-script&#34;)&lt;/script&gt;" in html
    assert "3 in, 4 out tokens" in html


def test_bad_choices_and_a_missing_variable_are_named(world: HubWorld, echo: EchoUpstream) -> None:
    with world.signed_in(world.owner) as http:
        html = http.get(PAGE).text
        for form, field in (
            ({"a": "1", "b": "9", "deployment": "echo"}, "b"),
            ({"a": "x", "b": "1", "deployment": "echo"}, "a"),
            ({"a": "1", "b": "2", "deployment": "nowhere"}, "deployment"),
        ):
            reply = _run(http, html, **form)
            assert reply.status_code == 400 and field in reply.text, (form, reply.text)
        reply = _run(http, html, a="1", b="2", deployment="echo")  # no question given
        assert reply.status_code == 200
        assert reply.text.count('class="error"') == 2 and "question" in reply.text
    assert echo.bodies == []  # nothing reached the model
