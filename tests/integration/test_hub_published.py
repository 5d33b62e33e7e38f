"""Published apps: a deployment at a public Hub link, its widget on another site, its own
token and daily quota, CORS and frame-ancestors per app, and publishing from the Hub.

The gateway runs on a real 127.0.0.1 server; the browser test serves the embedding page
from a second origin (another port) and chats through the script-tag widget.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from _browser import chromium
from _hub_world import REPLY, HubWorld, csrf_of, make_hub_world

from apps.hub._published_store import PublishedApps

pytestmark = pytest.mark.sqlite_only  # the Hub runs no SQL of its own beyond its table

ALLOWED = "http://allowed.example"


@pytest.fixture
def world(
    platform: Callable[..., Any], settings: Any, gateway_server: Callable[..., Any]
) -> HubWorld:
    return make_hub_world(platform, settings, gateway_server)


def publish(http: httpx.Client, project: str = "shop", **fields: str) -> httpx.Response:
    """The Hub's publish form, sent as the signed-in ``http``."""
    token = csrf_of(http.get(f"/hub/p/{project}/apps").text)
    form = {"csrf": token, "deployment": "chat", "requests_per_day": "1000", **fields}
    return http.post(f"/hub/p/{project}/apps", data=form)


def app_token(http: httpx.Client, slug: str) -> str:
    page = http.get(f"/hub/apps/{slug}")
    assert page.status_code == 200, page.text
    found = re.search(r'data-app-token="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def chat(
    http: httpx.Client, slug: str, token: str | None, *, origin: str | None = None
) -> httpx.Response:
    """The widget's chat request (``origin``: the page's, when another site's)."""
    given = {"x-app-token": token, "origin": origin}
    headers = {"accept": "text/event-stream, application/json"}
    headers.update({k: v for k, v in given.items() if v is not None})
    body = {"messages": [{"role": "user", "content": "hi"}]}
    return http.post(f"/hub/apps/{slug}/chat", json=body, headers=headers)


def answer_of(reply: httpx.Response) -> str:
    """The streamed answer's text."""
    text = ""
    for line in reply.text.splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            for choice in json.loads(line[6:]).get("choices") or []:
                text += (choice.get("delta") or {}).get("content") or ""
    return text


def test_an_owner_publishes_and_anyone_chats_without_a_session(world: HubWorld) -> None:
    with world.signed_in(world.owner) as owner:
        reply = publish(owner, slug="shop-chat", title="Shop help")
        assert reply.status_code == 303, reply.text
        assert reply.headers["location"] == "/hub/p/shop/apps#app-shop-chat"
        listing = owner.get("/hub/p/shop/apps").text
        assert f"{world.url}/hub/apps/shop-chat/widget.js" in listing  # the script snippet
        assert f"{world.url}/hub/apps/shop-chat?embed=1" in listing  # the iframe snippet
        assert "Unpublish" in listing
    with world.client() as anyone:
        page = anyone.get("/hub/apps/shop-chat")
        assert page.status_code == 200 and "Shop help" in page.text
        assert "gk_" not in page.text and "set-cookie" not in page.headers  # no key, no session
        token = app_token(anyone, "shop-chat")
        reply = chat(anyone, "shop-chat", token)
        assert reply.status_code == 200, reply.text
        assert reply.headers["content-type"].startswith("text/event-stream")
        assert answer_of(reply) == REPLY
        for bad in (None, "", "forged", token[:-4] + "AAAA"):
            refused = chat(anyone, "shop-chat", bad)
            assert refused.status_code == 401, (bad, refused.text)
            assert "load the app's page again" in refused.json()["error"]["message"]
        bad_body = anyone.post(
            "/hub/apps/shop-chat/chat", json={"messages": []}, headers={"x-app-token": token}
        )
        assert bad_body.status_code == 400
        widget = anyone.get("/hub/apps/shop-chat/widget.js")
        assert widget.status_code == 200
        assert widget.headers["content-type"].startswith("text/javascript")
        assert "gk_" not in widget.text
    # the call went through the gateway as the project: a ledger row, the app's key in it
    usage = world.admin.usage.report("shop", group_by=["model"])
    assert any(r.model == "chat" and r.requests >= 1 for r in usage.rows)
    apps = PublishedApps(world.admin).list("shop")
    assert [(a.slug, a.deployment, a.title) for a in apps] == [("shop-chat", "chat", "Shop help")]
    keys = {k.prefix: k for k in world.admin.keys.list("shop")}
    assert keys[apps[0].key_prefix].name == "app-shop-chat"


def test_a_viewer_cannot_publish_and_another_project_sees_nothing(world: HubWorld) -> None:
    with world.signed_in(world.viewer) as viewer:
        page = viewer.get("/hub/p/shop/apps")
        assert page.status_code == 200 and "Publish a deployment" not in page.text
        reply = publish(viewer, slug="by-viewer")
        assert reply.status_code == 403, reply.text
    with world.signed_in(world.owner) as owner:
        token = csrf_of(owner.get("/hub/p/shop/apps").text)
        refused = owner.post("/hub/p/shop/apps", data={"deployment": "chat", "slug": "no-csrf"})
        assert refused.status_code == 403
        assert publish(owner, slug="shop-chat").status_code == 303
        # bank's pages and forms are the same 404 as no project at all
        theirs = owner.post("/hub/p/bank/apps", data={"csrf": token, "deployment": "chat"})
        assert theirs.status_code == 404
        for action in ("unpublish", "revoke"):
            path = f"/hub/p/bank/apps/shop-chat/{action}"
            assert owner.post(path, data={"csrf": token}).status_code == 404
    with world.signed_in(world.outsider) as outsider:
        token = csrf_of(outsider.get("/hub/p/bank/apps").text)
        for action in ("unpublish", "revoke"):  # shop's app is not bank's to change
            path = f"/hub/p/bank/apps/shop-chat/{action}"
            assert outsider.post(path, data={"csrf": token}).status_code == 404
        assert "shop-chat" not in outsider.get("/hub/p/bank/apps").text
    assert [a.slug for a in PublishedApps(world.admin).list("shop")] == ["shop-chat"]


def test_bad_input_is_refused_with_the_fix(world: HubWorld) -> None:
    with world.signed_in(world.owner) as owner:
        cases = (
            ({"origins": "ftp://x.example"}, "invalid origin"),
            ({"origins": "https://x.example/path"}, "no path"),
            ({"requests_per_day": "many"}, "whole number"),
            ({"slug": "Not A Slug"}, "invalid app slug"),
            ({"deployment": "nope"}, "not found"),
        )
        for fields, words in cases:
            reply = publish(owner, **fields)
            assert reply.status_code in (400, 404), (fields, reply.text)
            assert words in reply.text, (fields, reply.text)
        assert publish(owner, slug="taken").status_code == 303
        reply = publish(owner, slug="taken")
        assert reply.status_code == 409 and "is taken" in reply.text
    assert [a.slug for a in PublishedApps(world.admin).list("shop")] == ["taken"]
    # no key was left behind by the refused attempts
    names = [k.name for k in world.admin.keys.list("shop")]
    assert names.count("app-taken") == 1 and len([n for n in names if n.startswith("app-")]) == 1


def test_the_apps_daily_quotas_give_a_clear_429(world: HubWorld) -> None:
    with world.signed_in(world.owner) as owner:
        assert publish(owner, slug="two-a-day", requests_per_day="2").status_code == 303
        assert publish(owner, slug="few-tokens", requests_per_day="", tokens_per_day="1")
    with world.client() as anyone:
        token = app_token(anyone, "two-a-day")
        assert [chat(anyone, "two-a-day", token).status_code for _ in range(2)] == [200, 200]
        over = chat(anyone, "two-a-day", token)
        assert over.status_code == 429
        assert "its 2 requests for today" in over.json()["error"]["message"]
        # another app of the same deployment has its own quota
        token = app_token(anyone, "few-tokens")
        assert chat(anyone, "few-tokens", token).status_code == 200  # counts its tokens
        over = chat(anyone, "few-tokens", token)
        assert over.status_code == 429
        assert "its 1 tokens for today" in over.json()["error"]["message"]


def test_quota_days_and_token_lifetimes_follow_the_hubs_clock_and_a_dead_key_is_hidden(
    platform: Callable[..., Any], settings: Any, gateway_server: Callable[..., Any]
) -> None:
    """The Hub's clock (injected) starts each app's quota day and ends its tokens."""
    from apps.admin import mount_admin
    from apps.hub import create_hub
    from apps.hub._published_store import TOKEN_TTL_S
    from genai.testing import ManualClock

    clock = ManualClock(start=20_833 * 86_400 + 8 * 3600.0)  # 08:00 UTC of some day

    def mount(app: Any, gateway: Any) -> None:
        mount_admin(app, gateway)
        hub = create_hub(gateway, app.state.settings, now=clock)
        hub.state.hub.parent = app
        app.mount("/hub", hub)

    admin = platform()
    admin.projects.create("shop")
    spec = {"targets": [{"name": "m", "backend": "fake", "options": {"default": "Hi."}}]}
    admin.registry.deployments.create("shop", "chat", spec=spec)
    PublishedApps(admin).publish("shop", "chat", slug="daily", requests_per_day=1)
    broken = PublishedApps(admin).publish("shop", "chat", slug="broken")
    admin.keys.revoke("shop", broken.key_prefix)  # behind the app's back
    live = gateway_server(settings, admin=mount)
    with httpx.Client(base_url=live.url, timeout=60) as anyone:
        refused = chat(anyone, "broken", app_token(anyone, "broken"))
        assert refused.status_code == 503 and "publish it again" in refused.text
        assert broken.key_prefix not in refused.text  # the key's words stay on the server
        token = app_token(anyone, "daily")
        assert chat(anyone, "daily", token).status_code == 200
        assert chat(anyone, "daily", token).status_code == 429
        clock.advance(TOKEN_TTL_S - 1)  # the same day, the same token
        assert chat(anyone, "daily", token).status_code == 429
        clock.advance(1)
        expired = chat(anyone, "daily", token)
        assert expired.status_code == 401 and "expired" in expired.json()["error"]["message"]
        clock.advance(12 * 3600)  # the next day: a new page, a new quota
        token = app_token(anyone, "daily")
        assert chat(anyone, "daily", token).status_code == 200
        assert chat(anyone, "daily", token).status_code == 429


def test_unpublishing_and_revoking_end_tokens_at_once(world: HubWorld) -> None:
    with world.signed_in(world.owner) as owner, world.client() as anyone:
        assert publish(owner, slug="short-lived").status_code == 303
        assert publish(owner, "shop", slug="other-app").status_code == 303
        token = app_token(anyone, "short-lived")
        other = app_token(anyone, "other-app")
        # a token of one app never works for another
        assert chat(anyone, "other-app", token).status_code == 401
        assert chat(anyone, "short-lived", other).status_code == 401
        csrf = csrf_of(owner.get("/hub/p/shop/apps").text)
        assert owner.post("/hub/p/shop/apps/short-lived/revoke", data={"csrf": csrf}).is_redirect
        refused = chat(anyone, "short-lived", token)
        assert refused.status_code == 401 and "revoked" in refused.json()["error"]["message"]
        token = app_token(anyone, "short-lived")  # a reloaded page works again
        assert chat(anyone, "short-lived", token).status_code == 200
        prefix = PublishedApps(world.admin).list("shop")[1].key_prefix
        reply = owner.post("/hub/p/shop/apps/short-lived/unpublish", data={"csrf": csrf})
        assert reply.status_code == 303
        never = anyone.get("/hub/apps/never-published")
        gone = anyone.get("/hub/apps/short-lived")
        assert gone.status_code == never.status_code == 404
        assert gone.text == never.text  # nothing says it was ever there
        assert chat(anyone, "short-lived", token).status_code == 404
        assert anyone.get("/hub/apps/short-lived/widget.js").status_code == 404
        assert chat(anyone, "other-app", other).status_code == 200  # the other one lives on
    revoked = [k for k in world.admin.keys.list("shop", include_revoked=True) if k.prefix == prefix]
    assert [k.status for k in revoked] == ["revoked"]


def test_cors_and_frame_ancestors_follow_the_apps_origins(world: HubWorld) -> None:
    with world.signed_in(world.owner) as owner:
        assert publish(owner, slug="listed", origins=f"{ALLOWED}\nhttps://b.example").is_redirect
        assert publish(owner, slug="anywhere").is_redirect
        hub_page = owner.get("/hub/p/shop/apps")
        assert "frame-ancestors 'none'" in hub_page.headers["content-security-policy"]
        assert hub_page.headers["x-frame-options"] == "DENY"
    preflight = {
        "access-control-request-method": "POST",
        "access-control-request-headers": "x-app-token",
    }
    with world.client() as anyone:
        page = anyone.get("/hub/apps/listed")
        csp = page.headers["content-security-policy"]
        assert f"frame-ancestors 'self' {ALLOWED} https://b.example" in csp
        assert "script-src 'self'" in csp and "x-frame-options" not in page.headers
        assert (
            "frame-ancestors *"
            in anyone.get("/hub/apps/anywhere").headers["content-security-policy"]
        )

        yes = anyone.options("/hub/apps/listed/chat", headers={"origin": ALLOWED, **preflight})
        assert yes.status_code == 204
        assert yes.headers["access-control-allow-origin"] == ALLOWED
        assert "x-app-token" in yes.headers["access-control-allow-headers"]
        assert "access-control-allow-credentials" not in yes.headers
        no = anyone.options("/hub/apps/listed/chat", headers={"origin": "https://evil.example"})
        assert no.status_code == 403 and "access-control-allow-origin" not in no.headers
        unknown = anyone.options("/hub/apps/nobody/chat", headers={"origin": ALLOWED})
        assert unknown.status_code == 404 and "access-control-allow-origin" not in unknown.headers
        some = anyone.options("/hub/apps/anywhere/chat", headers={"origin": "https://x.example"})
        assert some.headers["access-control-allow-origin"] == "https://x.example"

        token = app_token(anyone, "listed")
        allowed = chat(anyone, "listed", token, origin=ALLOWED)
        assert allowed.status_code == 200 and answer_of(allowed) == REPLY
        assert allowed.headers["access-control-allow-origin"] == ALLOWED
        refused = chat(anyone, "listed", token, origin="https://evil.example")
        assert refused.status_code == 403 and "access-control-allow-origin" not in refused.headers
        # the Hub's own origin (the page in the widget's frame) needs no CORS
        own = chat(anyone, "listed", token, origin=world.url)
        assert own.status_code == 200 and "access-control-allow-origin" not in own.headers
        # the Hub's signed-in routes answer no CORS at all
        signed = anyone.options("/hub/p/shop/chat/chat", headers={"origin": ALLOWED, **preflight})
        assert "access-control-allow-origin" not in signed.headers


def test_the_cli_publishes_lists_and_unpublishes(
    world: HubWorld, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from apps.cli import main

    monkeypatch.setenv("GENAI_HOME", str(world.settings.home))
    monkeypatch.setenv("GENAI_DATABASE_URL", world.settings.database_url)
    monkeypatch.setenv("GENAI_USER", "admin")

    def genai(*args: str) -> str:
        with pytest.raises(SystemExit) as done:  # typer exits, 0 when all went well
            main(list(args))
        out, err = capsys.readouterr()
        assert done.value.code == 0, err
        return out

    said = genai(
        "app", "publish", "chat", "-p", "shop", "--slug", "from-cli", "--origin", ALLOWED,
        "--daily-requests", "5", "--url", world.url,
    )  # fmt: skip
    assert f'<script src="{world.url}/hub/apps/from-cli/widget.js" async></script>' in said
    listed = json.loads(genai("app", "list", "-p", "shop", "--json"))
    assert [(a["slug"], a["requests_per_day"], a["allowed_origins"]) for a in listed] == [
        ("from-cli", 5, [ALLOWED])
    ]
    with world.client() as anyone:
        assert chat(anyone, "from-cli", app_token(anyone, "from-cli")).status_code == 200
        assert "unpublished" in genai("app", "unpublish", "from-cli", "-p", "shop")
        assert anyone.get("/hub/apps/from-cli").status_code == 404
    with pytest.raises(SystemExit) as done:
        main(["app", "publish", "chat", "-p", "shop", "--origin", "not a url"])
    assert done.value.code == 1
    assert "invalid origin 'not a url'" in capsys.readouterr().err


# ------------------------------------------------------------------ the browser


@contextlib.contextmanager
def second_origin(pages: dict[str, str]) -> Iterator[str]:
    """``pages`` (path: HTML) served by another origin (a stdlib server on another port)."""

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path, "no such page").encode("utf-8")
            self.send_response(200 if self.path in pages else 404)
            self.send_header("content-type", "text/html; charset=utf-8")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_widget_chats_from_another_origin_in_a_browser(world: HubWorld) -> None:
    def shop(slug: str) -> str:
        script = f'<script src="{world.url}/hub/apps/{slug}/widget.js" async></script>'
        return f"<!doctype html><title>Shop</title><h1>The shop</h1>{script}"

    with second_origin({"/": shop("embedded"), "/other": shop("not-here")}) as site:
        with world.signed_in(world.owner) as owner:
            assert publish(owner, slug="embedded", origins=site, title="Ask the shop").is_redirect
            assert publish(owner, slug="not-here", origins="https://elsewhere.example").is_redirect
        with chromium() as browser:
            context = browser.new_context()
            page = context.new_page()
            page.set_default_timeout(30_000)
            problems: list[str] = []

            def dialog(d: Any) -> None:
                problems.append(d.message)
                d.dismiss()

            page.on("dialog", dialog)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            try:
                # an app that lists another site only: the browser refuses to frame it here
                page.goto(site + "/other")
                with page.expect_console_message(lambda m: "frame-ancestors" in m.text):
                    page.click("[data-genai-app=bubble]")
                # the app that lists this site: open it, ask, see the streamed answer
                page.goto(site + "/")
                page.click("[data-genai-app=bubble]")
                frame = page.frame_locator("[data-genai-app=frame]")
                frame.locator("h1").wait_for()
                assert frame.locator("h1").inner_text() == "Ask the shop"
                frame.locator("#chat-input").fill("Where is my parcel?")
                frame.locator("button[type=submit]").click()
                done = frame.locator(".msg-assistant[data-done=true] .text")
                done.wait_for()
                assert done.inner_text() == REPLY  # the payloads in it are text, nothing ran
                pieces = frame.locator(".msg-assistant").get_attribute("data-pieces")
                assert int(pieces or 0) > 3  # it arrived piece by piece
                assert problems == []
            finally:
                context.close()
