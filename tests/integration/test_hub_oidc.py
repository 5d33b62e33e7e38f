"""Single sign-on to the Hub against a real (fake) OpenID Connect provider on 127.0.0.1,
followed redirect by redirect with httpx: the happy path, then every way it must fail
(a forged state, a tampered or expired ID token, an unknown user, a non-member, a provider
that is down), and sign-out that ends the session on the server, copies of the cookie
included."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from _hub_world import HubWorld, csrf_of, make_hub_world
from pydantic import SecretStr

from genai.testing import FakeOIDCProvider

pytestmark = pytest.mark.sqlite_only  # the Hub runs no SQL of its own


@dataclass
class Sso:
    world: HubWorld
    fake: FakeOIDCProvider

    def leave(self, http: httpx.Client, start: str) -> httpx.Response:
        """``start`` (a Hub URL) to the provider and back: the Hub's answer to the callback."""
        out = http.get(start)
        assert out.status_code == 303, out.text
        assert out.headers["location"].startswith(self.fake.url + "/authorize?")
        approved = http.get(out.headers["location"])
        assert approved.status_code == 302, approved.text
        back = approved.headers["location"]
        assert back.startswith(self.world.url + "/hub/signin/oidc/callback?"), back
        return http.get(back)


@pytest.fixture
def sso(
    platform: Callable[..., Any], settings: Any, gateway_server: Callable[..., Any], tmp_path: Any
) -> Iterator[Sso]:
    with FakeOIDCProvider(client_id="hub", client_secret="s3cret") as fake:
        secret = tmp_path / "oidc-secret"
        secret.write_text("s3cret\n")
        configured = settings.model_copy(
            update={
                "oidc_issuer": fake.url,
                "oidc_client_id": "hub",
                "oidc_client_secret_file": secret,
                "oidc_provider_name": "Corp SSO",
            }
        )
        world = make_hub_world(platform, configured, gateway_server)
        world.admin.projects.add_member("shop", "alice", role="developer")
        world.admin.projects.add_member("bank", "carol", role="developer")
        yield Sso(world, fake)


def test_signing_in_with_the_provider_lands_in_the_project_with_a_minted_key(sso: Sso) -> None:
    with sso.world.client() as http:
        page = http.get("/hub/signin")
        assert "Sign in with Corp SSO" in page.text and "/hub/signin/oidc" in page.text
        done = sso.leave(http, "/hub/signin/oidc?project=shop")
        assert done.status_code == 303 and done.headers["location"] == "/hub/p/shop", done.text
        assert "genai_hub_oidc" not in http.cookies  # the flow's cookie is gone
        home = http.get("/hub/p/shop")
        assert home.status_code == 200 and "developer" in home.text
        # another project's pages stay the 404 of a project that does not exist
        assert http.get("/hub/p/bank").status_code == 404
        assert http.get("/hub/p/bank/prompts").status_code == 404
    asked = sso.fake.authorize_requests[-1]
    assert asked["code_challenge_method"] == "S256" and len(asked["code_challenge"]) == 43
    assert asked["state"] and asked["nonce"] and "openid" in asked["scope"].split()
    assert "code_verifier" not in asked  # the verifier stays on the server until the exchange
    keys = [k for k in sso.world.admin.keys.list("shop") if k.name == "hub-sign-in"]
    assert [(k.owner, k.role) for k in keys] == [("alice", "developer")]


def test_the_page_asked_for_is_where_the_person_lands(sso: Sso) -> None:
    with sso.world.client() as http:
        first = http.get("/hub/p/shop/usage")
        assert first.headers["location"] == "/hub/signin?next=%2Fhub%2Fp%2Fshop%2Fusage"
        assert (
            'href="/hub/signin/oidc?next=%2Fhub%2Fp%2Fshop%2Fusage"'
            in http.get(first.headers["location"]).text
        )
        done = sso.leave(http, "/hub/signin/oidc?next=/hub/p/shop/usage")
        assert done.headers["location"] == "/hub/p/shop/usage"
        # never an open redirect
        done = sso.leave(http, "/hub/signin/oidc?project=shop&next=https://evil.example/")
        assert done.headers["location"] == "/hub/p/shop"


def test_without_a_project_the_only_one_is_chosen_or_the_person_picks(sso: Sso) -> None:
    with sso.world.client() as http:
        assert sso.leave(http, "/hub/signin/oidc").headers["location"] == "/hub/p/shop"
    sso.world.admin.projects.add_member("bank", "alice", role="developer")
    with sso.world.client() as http:
        choice = sso.leave(http, "/hub/signin/oidc")
        assert choice.status_code == 200 and "signed you in as <strong>alice" in choice.text
        for name in ("shop", "bank"):
            assert f'href="/hub/signin/oidc?project={name}"' in choice.text
        assert "genai_hub" not in http.cookies  # no session until a project is chosen
        done = sso.leave(http, "/hub/signin/oidc?project=bank")
        assert done.headers.get("location") == "/hub/p/bank", done.text
        assert http.get("/hub/p/bank").status_code == 200


def test_a_forged_or_foreign_state_is_refused(sso: Sso) -> None:
    with sso.world.client() as http:
        out = http.get("/hub/signin/oidc?project=shop")
        back = http.get(out.headers["location"]).headers["location"]
        query = parse_qs(urlsplit(back).query)
        forged = back.replace(query["state"][0], "forged-state")
        reply = http.get(forged)
        assert reply.status_code == 400 and "state differs" in reply.text, reply.text
        assert http.get("/hub/p/shop").status_code == 303  # not signed in
    with sso.world.client() as other:  # a browser that did not start this sign-in
        out = other.get("/hub/signin/oidc?project=shop")
        back = other.get(out.headers["location"]).headers["location"]
    with sso.world.client() as victim:
        reply = victim.get(back)
        assert reply.status_code == 400 and "not started in this browser" in reply.text
        assert "genai_hub" not in victim.cookies


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"tamper": True}, "did not verify against its keys"),
        ({"now": lambda: 1_000_000.0}, "has expired"),
        ({"audience": "another-client"}, "was refused"),
        ({"issuer": "http://127.0.0.1:1/other"}, "was refused"),
    ],
)
def test_an_id_token_that_does_not_check_out_signs_no_one_in(
    sso: Sso, change: dict[str, Any], words: str
) -> None:
    for name, value in change.items():
        setattr(sso.fake, name, value)
    with sso.world.client() as http:
        reply = sso.leave(http, "/hub/signin/oidc?project=shop")
        assert reply.status_code == 401 and words in reply.text, reply.text
        assert "Traceback" not in reply.text and "genai_hub" not in http.cookies
        assert http.get("/hub/p/shop").status_code == 303
    assert not [k for k in sso.world.admin.keys.list("shop") if k.name == "hub-sign-in"]


def test_an_unknown_user_is_refused_and_not_created(sso: Sso) -> None:
    sso.fake.user = {"sub": "u-9", "preferred_username": "mallory"}
    with sso.world.client() as http:
        reply = sso.leave(http, "/hub/signin/oidc?project=shop")
        assert reply.status_code == 403 and "no such user" in reply.text, reply.text
        assert "genai user add mallory" in reply.text
    assert "mallory" not in [u.name for u in sso.world.admin.users.list()]
    sso.fake.user = {"sub": "u-9", "preferred_username": "<b>no such name</b>"}
    with sso.world.client() as http:
        reply = sso.leave(http, "/hub/signin/oidc?project=shop")
        assert reply.status_code == 403 and "not a user name" in reply.text
        assert "&lt;b&gt;no such name&lt;/b&gt;" in reply.text  # escaped, as text


def test_users_are_created_only_when_the_setting_says_so(
    platform: Callable[..., Any], settings: Any, gateway_server: Callable[..., Any]
) -> None:
    with FakeOIDCProvider(user={"sub": "u-7", "email": "Dan@Corp.example"}) as fake:
        configured = settings.model_copy(
            update={
                "oidc_issuer": fake.url,
                "oidc_client_id": fake.client_id,
                "oidc_client_secret": SecretStr(fake.client_secret),
                "oidc_user_claim": "email",
                "oidc_create_users": True,
            }
        )
        world = make_hub_world(platform, configured, gateway_server)
        flow = Sso(world, fake)
        with world.client() as http:
            assert "Sign in with single sign-on" in http.get("/hub/signin").text
            reply = flow.leave(http, "/hub/signin/oidc")
            assert reply.status_code == 403 and "not a member of any project" in reply.text
        assert "dan@corp.example" in [u.name for u in world.admin.users.list()]
        world.admin.projects.add_member("shop", "dan@corp.example", role="developer")
        with world.client() as http:
            assert flow.leave(http, "/hub/signin/oidc").headers["location"] == "/hub/p/shop"


def test_a_non_member_is_told_the_same_as_for_a_project_that_does_not_exist(sso: Sso) -> None:
    sso.fake.user = {"sub": "u-3", "preferred_username": "carol"}  # a member of bank only
    with sso.world.client() as http:
        theirs = sso.leave(http, "/hub/signin/oidc?project=shop")
        nothing = sso.leave(http, "/hub/signin/oidc?project=nope")
        assert theirs.status_code == nothing.status_code == 404
        assert "not found, or you are not a member" in theirs.text
        assert theirs.text.replace("shop", "nope") == nothing.text.replace(
            csrf_field(nothing.text), csrf_field(theirs.text)
        )
        assert http.get("/hub/p/shop").status_code == 303
        assert sso.leave(http, "/hub/signin/oidc?project=bank").headers["location"] == "/hub/p/bank"
        assert http.get("/hub/p/shop").status_code == 404


def csrf_field(html: str) -> str:
    start = html.index('name="csrf" value="') + len('name="csrf" value="')
    return html[start : html.index('"', start)]


def test_a_provider_that_is_down_is_a_sentence_on_the_sign_in_page(
    platform: Callable[..., Any], settings: Any, gateway_server: Callable[..., Any]
) -> None:
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{closed.getsockname()[1]}"
    configured = settings.model_copy(
        update={"oidc_issuer": down, "oidc_client_id": "hub", "oidc_client_secret": SecretStr("x")}
    )
    world = make_hub_world(platform, configured, gateway_server)
    with world.client() as http:
        reply = http.get("/hub/signin/oidc?project=shop")
        assert reply.status_code == 502 and "did not answer" in reply.text, reply.text
        assert "Traceback" not in reply.text and 'name="key"' in reply.text
    # not configured at all: no button, and the routes do not exist
    from apps.gateway import mount_platform

    plain = gateway_server(settings, admin=mount_platform)
    with httpx.Client(base_url=plain.url, timeout=30) as http:
        assert "/hub/signin/oidc" not in http.get("/hub/signin").text
        assert http.get("/hub/signin/oidc").status_code == 404


# ------------------------------------------------------------------ sign-out


def _copy_of(http: httpx.Client, world: HubWorld) -> httpx.Client:
    """Another browser holding a copy of ``http``'s session cookie."""
    thief = world.client()
    thief.cookies.set("genai_hub", http.cookies["genai_hub"], path="/hub")
    return thief


def test_signing_out_ends_the_session_for_every_copy_of_the_cookie(sso: Sso) -> None:
    world = sso.world
    with world.signed_in(world.owner) as http, _copy_of(http, world) as thief:
        assert thief.get("/hub/p/shop").status_code == 200  # the copy works while signed in
        token = csrf_of(http.get("/hub/p/shop").text)
        assert http.post("/hub/signout", data={"csrf": token}).status_code == 303
        refused = thief.get("/hub/p/shop")
        assert refused.status_code == 303 and refused.headers["location"].startswith("/hub/signin")
        reply = thief.post("/hub/p/shop/feedback", json={}, headers={"accept": "application/json"})
        assert reply.status_code in (401, 403)
    # a key typed into the form is the person's own: it still works on the API
    answer = httpx.get(
        world.url + "/v1/models", headers={"authorization": f"Bearer {world.owner}"}, timeout=30
    )
    assert answer.status_code == 200
    # signing in again is a new session
    with world.signed_in(world.owner) as again:
        assert again.get("/hub/p/shop").status_code == 200


def test_signing_out_of_single_sign_on_revokes_the_minted_key(sso: Sso) -> None:
    world = sso.world
    with world.client() as http:
        assert sso.leave(http, "/hub/signin/oidc?project=shop").status_code == 303
        with _copy_of(http, world) as thief:
            assert thief.get("/hub/p/shop/usage").status_code == 200
            token = csrf_of(http.get("/hub/p/shop").text)
            assert http.post("/hub/signout", data={"csrf": token}).status_code == 303
            assert thief.get("/hub/p/shop/usage").status_code == 303
    every = world.admin.keys.list("shop", include_revoked=True)
    assert [k.status for k in every if k.name == "hub-sign-in"] == ["revoked"]


def test_a_viewer_is_told_their_role_may_not_hold_the_sessions_key(sso: Sso) -> None:
    # a Hub session is a key minted for its user (as a sign-in link's), and viewers may
    # not hold keys: the page says so rather than pretending the project is not there
    sso.world.admin.projects.add_member("shop", "vic", role="viewer")
    sso.fake.user = {"sub": "u-5", "preferred_username": "vic"}
    with sso.world.client() as http:
        reply = sso.leave(http, "/hub/signin/oidc?project=shop")
        assert reply.status_code == 403 and "may not hold API keys" in reply.text, reply.text
        assert "genai_hub" not in http.cookies
