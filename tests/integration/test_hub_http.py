"""The Hub over plain HTTP: sign-in and sessions, CSRF, the tenancy of every route, the
chat stream as the session's key, and untrusted texts escaped in the HTML.

Every route is checked three ways: signed out (sent to sign-in), signed in to another
project (the same 404 as a project that does not exist) and signed in to its own project.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from _clocks import wait_until
from _hub_world import (
    PAGES,
    POSTS,
    REPLY,
    XSS,
    HubWorld,
    csrf_of,
    make_agent_world,
    make_docs_world,
    make_hub_world,
    post,
    signin_token,
)

from apps.hub import sign_in_link
from prompts import PromptHub

# the Hub runs no SQL of its own: the services' own tests cover PostgreSQL
pytestmark = pytest.mark.sqlite_only


@pytest.fixture
def world(
    platform: Callable[..., Any], settings: Any, gateway_server: Callable[..., Any]
) -> HubWorld:
    return make_hub_world(platform, settings, gateway_server)


def test_signed_out_every_page_goes_to_sign_in(world: HubWorld) -> None:
    with world.client() as http:
        for page in PAGES:
            path = page.format(p="shop")
            reply = http.get(path)
            assert reply.status_code == 303, (path, reply.text)
            assert reply.headers["location"].startswith("/hub/signin?next="), path
        for path in (*POSTS, "/hub/signout"):
            reply = http.post(path.format(p="shop"), data={"csrf": "x"})
            assert reply.status_code == 303 and "/hub/signin" in reply.headers["location"]
        # a fetch (JSON) is told 401 rather than redirected
        reply = http.post(
            POSTS[0].format(p="shop"), json={"messages": []}, headers={"accept": "application/json"}
        )
        assert reply.status_code == 401
        assert http.get("/hub/").headers["location"] == "/hub/signin"


def test_every_page_of_the_own_project_answers(world: HubWorld) -> None:
    with world.signed_in(world.owner) as http:
        for page in PAGES:
            reply = http.get(page.format(p="shop"))
            assert reply.status_code == 200, (page, reply.text)
            assert reply.headers["content-type"].startswith("text/html")
            csp = reply.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
            assert reply.headers["cache-control"] == "no-store"
            assert world.owner not in reply.text  # the key never reaches a page
        assert http.get("/hub/").headers["location"] == "/hub/p/shop"


def test_another_projects_pages_are_404_like_no_project(world: HubWorld) -> None:
    with world.signed_in(world.outsider) as bank, world.signed_in(world.owner) as shop:
        for page in PAGES:
            theirs = shop.get(page.format(p="bank"))
            nobody = shop.get(page.format(p="nope"))
            assert theirs.status_code == nobody.status_code == 404, page
            assert theirs.text.replace("bank", "nope") == nobody.text, page  # word for word
            assert bank.get(page.format(p="shop")).status_code == 404, page
        token = csrf_of(shop.get("/hub/p/shop").text)
        for path in POSTS:
            reply = post(shop, path.format(p="bank"), token)
            assert reply.status_code == 404, (path, reply.text)
        # a page that does not exist is a 404 too, after the project check
        assert shop.get("/hub/p/shop/nothing-here").status_code == 404
        assert shop.get("/hub/p/bank/nothing-here").status_code == 404


def test_a_post_without_the_csrf_token_is_refused(world: HubWorld) -> None:
    with world.signed_in(world.owner) as http:
        token = csrf_of(http.get("/hub/p/shop").text)
        for path in POSTS:
            for given in (None, "forged", ""):
                reply = post(http, path.format(p="shop"), given)
                assert reply.status_code == 403, (path, given, reply.text)
        body = {"messages": [{"role": "user", "content": "hi"}]}
        for headers in ({}, {"x-csrf-token": "forged"}):
            reply = http.post("/hub/p/shop/chat/chat", json=body, headers=headers)
            assert reply.status_code == 403, reply.text
        assert http.post("/hub/signout", data={}).status_code == 403
        assert http.post("/hub/signout", data={"csrf": token + "x"}).status_code == 403
        assert http.get("/hub/p/shop").status_code == 200  # still signed in
        reply = http.post("/hub/signout", data={"csrf": token})
        assert reply.status_code == 303
        assert http.get("/hub/p/shop").status_code == 303  # signed out now


def test_the_sign_in_form_refuses_bad_keys_cross_site_posts_and_open_redirects(
    world: HubWorld,
) -> None:
    with world.client() as http:
        token = signin_token(http)
        wrong = "gk_abcdefghij_" + "A" * 43
        for key in ("", "not-a-key", wrong, world.owner + "x"):
            reply = http.post("/hub/signin", data={"key": key, "csrf": token})
            assert reply.status_code == 401, key
            assert "did not sign you in" in reply.text and (not key or key not in reply.text)
        # a post from another site has no sign-in cookie, or not the form's token
        with world.client() as other:
            assert other.post("/hub/signin", data={"key": world.owner}).status_code == 403
        reply = http.post("/hub/signin", data={"key": world.owner, "csrf": "x"})
        assert reply.status_code == 403
        for target in ("https://evil.example/", "//evil.example/hub/", "/hub/p/bank"):
            data = {"key": world.owner, "csrf": signin_token(http), "next": target}
            reply = http.post("/hub/signin", data=data)
            assert reply.headers["location"] == "/hub/p/shop", target
        data = {"key": world.owner, "csrf": signin_token(http), "next": "/hub/p/shop/usage"}
        assert http.post("/hub/signin", data=data).headers["location"] == "/hub/p/shop/usage"


def test_the_session_cookie_is_httponly_lax_and_sealed(world: HubWorld) -> None:
    with world.client() as http:
        reply = http.post("/hub/signin", data={"key": world.owner, "csrf": signin_token(http)})
        cookie = next(
            v for k, v in reply.headers.multi_items() if k == "set-cookie" and "genai_hub=" in v
        )
        flags = cookie.lower()
        assert "httponly" in flags and "samesite=lax" in flags and "path=/hub" in flags
        value = http.cookies["genai_hub"]
        prefix = world.owner.split("_")[1]
        assert prefix not in value and world.owner not in value
        # a changed cookie is no session
        http.cookies.set("genai_hub", value[:-4] + "AAAA", path="/hub")
        assert http.get("/hub/p/shop").status_code == 303


def test_a_revoked_key_ends_its_session_at_the_next_request(world: HubWorld) -> None:
    with world.signed_in(world.viewer) as http:
        assert http.get("/hub/p/shop").status_code == 200
        world.admin.keys.revoke("shop", "gk_" + world.viewer.split("_")[1])
        reply = http.get("/hub/p/shop/prompts")
        assert reply.status_code == 303 and reply.headers["location"].startswith("/hub/signin")


def test_a_viewer_sees_what_a_viewer_may_and_cannot_chat(world: HubWorld) -> None:
    with world.signed_in(world.viewer) as http:
        page = http.get("/hub/p/shop")
        assert page.status_code == 200
        assert "needs role developer" in page.text  # the keys section, refused by authorize()
        audit = http.get("/hub/p/shop/audit")
        assert audit.status_code == 200 and "needs role maintainer" in audit.text
        token = csrf_of(page.text)
        body = {"messages": [{"role": "user", "content": "hi"}]}
        headers = {"x-csrf-token": token, "accept": "application/json"}
        reply = http.post("/hub/p/shop/chat/chat", json=body, headers=headers)
        assert reply.status_code == 403, reply.text
        assert "model:invoke" in reply.json()["error"]["message"]


def test_chat_streams_the_gateways_answer_as_the_sessions_key(world: HubWorld) -> None:
    with world.signed_in(world.owner) as http:
        token = csrf_of(http.get("/hub/p/shop/chat/chat").text)
        body = {"messages": [{"role": "user", "content": "hi"}]}
        headers = {"x-csrf-token": token, "accept": "text/event-stream, application/json"}
        with http.stream("POST", "/hub/p/shop/chat/chat", json=body, headers=headers) as reply:
            assert reply.status_code == 200
            assert reply.headers["content-type"].startswith("text/event-stream")
            events = [line for line in reply.iter_lines() if line.startswith("data: ")]
        assert len(events) > 3 and events[-1] == "data: [DONE]"
        assert "Hello" in events[0] + events[1]
        bad_bodies: list[Any] = [{"messages": []}, {"messages": [{"role": "system"}]}, [1]]
        for bad in bad_bodies:
            reply = http.post("/hub/p/shop/chat/chat", json=bad, headers=headers)
            assert reply.status_code == 400, reply.text
    # the call went through the gateway as the key: a ledger row of the project
    usage = world.admin.usage.report("shop", group_by=["model"])
    assert any(r.model == "chat" and r.requests >= 1 for r in usage.rows)


def test_untrusted_texts_are_escaped_in_every_page(world: HubWorld) -> None:
    with world.signed_in(world.owner) as http:
        for page in PAGES:
            html = http.get(page.format(p="shop")).text
            for payload in XSS:
                assert payload not in html, (page, payload)
        prompt = http.get("/hub/p/shop/prompts/greet").text
        assert "&lt;svg onload=alert(" in prompt  # the YAML source, escaped
        assert "&lt;script&gt;alert(&#34;xss-script&#34;)&lt;/script&gt;" in prompt
        assert "xss-svg" in http.get("/hub/p/shop/registry").text  # shown, as text
        assert "xss-img" in http.get("/hub/p/shop/deployments").text
    assert REPLY  # the model's answer is checked in the browser (test_hub_browser.py)


def test_a_sign_in_link_works_once(world: HubWorld) -> None:
    link = sign_in_link(world.settings, "shop", base_url=world.url)
    assert link.startswith(world.url + "/hub/signin/link?token=")
    path = link.removeprefix(world.url)
    with world.client() as http:
        reply = http.get(path)
        assert reply.status_code == 303 and reply.headers["location"] == "/hub/p/shop"
        page = http.get("/hub/p/shop")
        assert page.status_code == 200 and "owner" in page.text
    with world.client() as again:
        reply = again.get(path)
        assert reply.status_code == 401 and "used already" in reply.text
        assert again.get("/hub/p/shop").status_code == 303
        forged = again.get("/hub/signin/link?token=" + path[-40:])
        assert forged.status_code == 401 and "not valid" in forged.text
    # a second link revokes the first link's key: its browser is signed out
    keys = [k for k in world.admin.keys.list("shop") if k.name == "hub-sign-in"]
    assert [k.status for k in keys] == ["active"]
    sign_in_link(world.settings, "shop", base_url=world.url)
    every = world.admin.keys.list("shop", include_revoked=True)
    statuses = sorted(k.status for k in every if k.name == "hub-sign-in")
    assert statuses == ["active", "revoked"]


def test_static_files_are_served_and_no_cdn_is_named(world: HubWorld) -> None:
    with httpx.Client(base_url=world.url, timeout=30) as http:
        for name in ("hub.css", "chat.js", "hub.js"):
            reply = http.get(f"/hub/static/{name}")
            assert reply.status_code == 200 and "http" not in reply.text.replace("https?", "")


def test_the_docs_bot_answers_with_citations_and_the_search_box_finds_them(
    platform: Callable[..., Any],
    settings: Any,
    gateway_server: Callable[..., Any],
    embedder: Any,
    tmp_path: Any,
) -> None:
    world = make_docs_world(platform, settings, gateway_server, embedder, tmp_path / "docs")
    with world.signed_in(world.viewer) as http:
        page = http.get("/hub/p/shop/knowledge/docs", params={"q": "How long do refunds take?"})
        assert page.status_code == 200, page.text
        assert "refunds.md" in page.text and "five business days" in page.text
        assert http.get("/hub/p/shop/knowledge").status_code == 200
        assert http.get("/hub/p/bank/knowledge/docs").status_code == 404
        assert http.get("/hub/p/shop/knowledge/nope").status_code == 404
    with world.signed_in(world.owner) as http:
        token = csrf_of(http.get("/hub/p/shop/chat/docs-bot").text)
        body = {"messages": [{"role": "user", "content": "How long do refunds take?"}]}
        headers = {"x-csrf-token": token, "accept": "text/event-stream, application/json"}
        with http.stream("POST", "/hub/p/shop/chat/docs-bot", json=body, headers=headers) as reply:
            assert reply.status_code == 200
            lines = [line for line in reply.iter_lines() if line.startswith("data: {")]
        chunks = [json.loads(line.removeprefix("data: ")) for line in lines]
        text = "".join(
            c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices")
        )
        citations = [c["citations"] for c in chunks if c.get("citations")]
        assert "five business days" in text
        assert citations and citations[-1][0]["source"].endswith("refunds.md")


def test_moving_a_label_is_a_developers_write_and_a_viewers_403(world: HubWorld) -> None:
    with world.signed_in(world.viewer) as http:
        page = http.get("/hub/p/shop/prompts/greet")
        assert "Move label" not in page.text  # no form for a role that may not
        reply = post(http, "/hub/p/shop/prompts/greet/label", csrf_of(page.text))
        assert reply.status_code == 403 and "alias:set" in reply.text
    with world.signed_in(world.owner) as http:
        page = http.get("/hub/p/shop/prompts/greet")
        assert "Move label" in page.text
        token = csrf_of(page.text)
        reply = http.post(
            "/hub/p/shop/prompts/greet/label",
            data={"csrf": token, "version": "1", "label": "production"},
        )
        assert reply.status_code == 303
        assert reply.headers["location"] == "/hub/p/shop/prompts/greet#labels"
        for bad in ({"version": "x", "label": "production"}, {"version": "1", "label": ""}):
            reply = http.post("/hub/p/shop/prompts/greet/label", data={"csrf": token, **bad})
            assert reply.status_code == 400, reply.text
    moves = PromptHub(world.admin, "shop").label_history("greet", label="production")
    assert [(m.from_version, m.to_version) for m in moves][-1] == (2, 1)
    assert moves[-1].actor.endswith("via key gk_" + world.owner.split("_")[1])


def test_genai_hub_link_prints_a_link_that_signs_in(
    world: HubWorld, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from apps.cli import main

    monkeypatch.setenv("GENAI_HOME", str(world.settings.home))
    monkeypatch.setenv("GENAI_DATABASE_URL", world.settings.database_url)
    monkeypatch.setenv("GENAI_USER", "admin")
    with pytest.raises(SystemExit) as done:  # typer exits, 0 when all went well
        main(["hub", "link", "--project", "shop", "--url", world.url + "/"])
    assert done.value.code == 0
    link = capsys.readouterr().out.strip()
    assert link.startswith(world.url + "/hub/signin/link?token="), link
    with world.client() as http:
        reply = http.get(link.removeprefix(world.url))
        assert reply.status_code == 303 and reply.headers["location"] == "/hub/p/shop"
        assert http.get("/hub/p/shop/usage").status_code == 200


def test_bad_parameters_are_a_page_naming_the_field_never_a_trace(world: HubWorld) -> None:
    with world.signed_in(world.owner) as http:
        for path, field in (
            ("/hub/p/shop/prompts/greet/diff?a=0&b=2", "a"),
            ("/hub/p/shop/prompts/greet/diff?a=1", "b"),
            ("/hub/p/shop/usage?since=yesterday", "since"),
            ("/hub/p/shop/usage?since=2026-02-02&until=2026-01-01", "since"),
            ("/hub/p/shop/registry/datasets/faq?version=x", "version"),
        ):
            reply = http.get(path)
            assert reply.status_code == 400, (path, reply.text)
            assert reply.headers["content-type"].startswith("text/html")
            assert field in reply.text and "Traceback" not in reply.text
        assert http.get("/hub/p/shop/prompts/nope").status_code == 404
        assert http.get("/hub/p/shop/prompts/greet/diff?a=1&b=9").status_code == 404
        assert http.get("/hub/p/shop/registry/datasets/nope").status_code == 404
        assert http.get("/hub/p/shop/chat/nope").status_code == 404


def test_the_approvals_inbox_decides_through_the_admin_api_and_the_run_goes_on(
    platform: Callable[..., Any], settings: Any, gateway_server: Callable[..., Any]
) -> None:
    from agents import AgentRunner

    world, maintainer, run_id = make_agent_world(platform, settings, gateway_server)
    decide = f"/hub/p/shop/agents/approvals/{run_id}/c1"
    with world.signed_in(world.viewer) as http:  # a developer: sees it, may not decide
        page = http.get("/hub/p/shop/agents")
        assert run_id in page.text and "weather" in page.text and "Approve" not in page.text
        reply = http.post(decide, data={"csrf": csrf_of(page.text), "decision": "approve"})
        assert reply.status_code == 403 and "agent:approve" in reply.text
    with world.signed_in(world.outsider) as http:
        token = csrf_of(http.get("/hub/p/bank/agents").text)
        assert http.post(decide, data={"csrf": token, "decision": "approve"}).status_code == 404
        assert run_id not in http.get("/hub/p/bank/agents").text
    with world.signed_in(maintainer) as http:
        page = http.get("/hub/p/shop/agents")
        assert "Approve" in page.text
        token = csrf_of(page.text)
        assert http.post(decide, data={"decision": "approve"}).status_code == 403  # no token
        bad = http.post(decide, data={"csrf": token, "decision": "maybe"})
        assert bad.status_code == 400 and "decision" in bad.text
        reply = http.post(decide, data={"csrf": token, "decision": "approve", "reason": "ok"})
        assert reply.status_code == 303, reply.text
        assert reply.headers["location"].startswith("/hub/p/shop/agents?decided=approved")
        assert "Done: approved c1." in http.get(reply.headers["location"]).text
        crafted = http.get("/hub/p/shop/agents", params={"decided": "Call +1 555 now"}).text
        # only the form's own words are shown ("555" alone may be in a random run id)
        assert "Call +1" not in crafted and "555 now" not in crafted
        runner = AgentRunner(world.admin, "shop", gateway=world.url + "/v1", api_key="")
        assert wait_until(lambda: runner.get(run_id).status == "completed", 30)
        assert runner.get(run_id).output == "Sunny in Rome."
        again = http.post(decide, data={"csrf": token, "decision": "reject"})
        assert again.status_code == 409  # a decision is final
        assert "Nothing waits" in http.get("/hub/p/shop/agents").text
