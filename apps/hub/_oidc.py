"""Single sign-on: the Hub as an OpenID Connect client (authorization code with PKCE).

Configured by ``GENAI_OIDC_ISSUER``, ``GENAI_OIDC_CLIENT_ID`` and the client's secret
(``GENAI_OIDC_CLIENT_SECRET`` or ``GENAI_OIDC_CLIENT_SECRET_FILE``); the sign-in page then
offers "Sign in with <GENAI_OIDC_PROVIDER_NAME>". The flow:

1. ``/signin/oidc`` makes a state, a nonce and a PKCE verifier, seals them (with the
   project asked for and the page to return to) into a short-lived SameSite=Lax cookie, and
   sends the browser to the provider's authorization endpoint (from its discovery document).
2. ``/signin/oidc/callback`` checks the state against the cookie, trades the code (with the
   verifier) for tokens through authlib's httpx client, and verifies the ID token with
   joserfc (authlib's JOSE library): its signature against the provider's JWKS (asymmetric
   algorithms only), the issuer, the audience (our client id), expiry, and the nonce.
3. The claim ``GENAI_OIDC_USER_CLAIM`` names an existing platform user (registered on the
   spot only when ``GENAI_OIDC_CREATE_USERS`` says so, and then a member of nothing); the
   user must be a member of the project they sign into (asked for with ``?project=``, else
   their only project, else a choice). The session then holds a key minted for the user
   in that project exactly as a sign-in link's (:func:`apps.hub._sessions.mint_hub_key`).

Every failure (an unknown user, not a member, a stale or forged state, a bad token, a
provider that does not answer) is the sign-in page with a sentence, never a trace; a
project the user is not a member of is the same 404 as a project that does not exist.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException

from apps.hub._oidc_client import OidcClient, OidcConfig, SignInFailed
from apps.hub._signin import form_page, safe_next, start_session
from apps.hub._web import HubState, state_of, with_headers
from genai.errors import (
    AuthenticationError,
    ConfigError,
    NotFoundError,
    PermissionDenied,
    ValidationError,
)

__all__ = ["FLOW_COOKIE", "router"]

router = APIRouter()
FLOW_COOKIE = "genai_hub_oidc"
FLOW_TTL_S = 600  # from leaving for the provider to coming back
_FLOW = "oidc-flow"


def _client(hub: HubState) -> OidcClient:
    """The Hub's OIDC client (made once); a 404 where single sign-on is not configured."""
    client = hub.extras.get("oidc")
    if isinstance(client, OidcClient):
        return client
    try:
        config = OidcConfig.from_settings(hub.settings)
    except ConfigError as error:
        raise SignInFailed(f"single sign-on is misconfigured: {error}", status=503) from None
    if config is None:
        raise HTTPException(404, "single sign-on is not configured on this gateway")
    client = OidcClient(config, now=hub.codec.now)
    hub.extras["oidc"] = client
    return client


def _redirect_uri(request: Request, hub: HubState, config: OidcConfig) -> str:
    if config.redirect_url:
        return config.redirect_url
    return f"{request.url.scheme}://{request.url.netloc}{hub.url('signin', 'oidc', 'callback')}"


@router.get("/signin/oidc", include_in_schema=False)
async def oidc_start(
    request: Request,
    project: Annotated[str, Query(max_length=100)] = "",
    next: Annotated[str, Query(max_length=2048)] = "",
) -> Response:
    """Leave for the provider; ``project`` (or the project of ``next``) is where to land."""
    hub = state_of(request)
    target = safe_next(hub, next) or ""
    if not project and target.startswith(hub.url("p") + "/"):
        project = target.removeprefix(hub.url("p") + "/").split("/")[0]
    state, nonce, verifier = (secrets.token_urlsafe(32) for _ in range(3))
    try:
        client = _client(hub)
        redirect = _redirect_uri(request, hub, client.config)
        url = await client.authorization_url(redirect, state=state, nonce=nonce, verifier=verifier)
    except SignInFailed as failure:
        return form_page(request, next=target, error=failure.message, status=failure.status)
    flow: dict[str, Any] = {"s": state, "n": nonce, "v": verifier, "p": project, "x": target}
    flow |= {"r": redirect, "e": hub.codec.now() + FLOW_TTL_S}
    response = with_headers(RedirectResponse(url, status_code=303))
    response.set_cookie(
        FLOW_COOKIE,
        hub.codec.seal(flow, _FLOW),
        max_age=FLOW_TTL_S,
        path=hub.prefix,
        httponly=True,
        samesite="lax",  # the provider's redirect back is a cross-site navigation
        secure=request.url.scheme == "https",
    )
    return response


@router.get("/signin/oidc/callback", include_in_schema=False)
async def oidc_callback(
    request: Request,
    code: Annotated[str, Query(max_length=4096)] = "",
    state: Annotated[str, Query(max_length=512)] = "",
    error: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    """Back from the provider: check the state, the code and the ID token, then sign in."""
    hub = state_of(request)
    flow = hub.codec.open(request.cookies.get(FLOW_COOKIE), _FLOW)
    try:
        client = _client(hub)
        if flow is None or float(flow.get("e", 0)) <= hub.codec.now():
            raise SignInFailed(
                "That sign-in was not started in this browser, or took longer than 10 "
                "minutes: start again.",
                status=400,
            )
        if not state or not secrets.compare_digest(state.encode(), str(flow["s"]).encode()):
            raise SignInFailed(
                "The provider's answer does not belong to this sign-in (its state differs): "
                "start again.",
                status=400,
            )
        if error:
            raise SignInFailed(f"{client.config.name} did not sign you in ({error}).")
        claims = await client.identity(
            code, verifier=str(flow["v"]), redirect_uri=str(flow["r"]), nonce=str(flow["n"])
        )
        user = _user_of(client.config, claims)
        done = await run_in_threadpool(_sign_in, hub, client.config, user, str(flow["p"]))
    except SignInFailed as failure:
        response = form_page(request, next=None, error=failure.message, status=failure.status)
        response.delete_cookie(FLOW_COOKIE, path=hub.prefix)
        return response
    if isinstance(done, list):  # several projects: the person picks one
        response = form_page(request, next=None, projects=done, signed_in_as=user)
    else:
        project, key = done
        target = str(flow["x"])
        if not target.startswith(hub.url("p", project)):
            target = hub.url("p", project)
        response = start_session(request, hub, key, project, target, minted=True)
    response.delete_cookie(FLOW_COOKIE, path=hub.prefix)
    return response


def _user_of(config: OidcConfig, claims: dict[str, Any]) -> str:
    """The platform user name the configured claim gives (lower case; its form is checked
    where the user is looked up)."""
    value = claims.get(config.user_claim)
    if config.user_claim == "email" and claims.get("email_verified") is False:
        raise SignInFailed(f"{config.name} has not verified your e-mail address", status=403)
    if not isinstance(value, str) or not value.strip():
        raise SignInFailed(
            f"{config.name}'s ID token has no {config.user_claim!r} claim to name your user "
            "(GENAI_OIDC_USER_CLAIM)",
            status=403,
        )
    return value.strip().lower()


def _sign_in(
    hub: HubState, config: OidcConfig, user: str, project: str
) -> tuple[str, str] | list[str]:
    """A key minted for ``user`` in ``project`` (their only project when none is named),
    or the projects to choose from. Runs the database work: call it in a worker thread."""
    from apps.hub._sessions import mint_hub_key
    from genai import connect

    try:  # the gateway's store: this client is not closed
        client = connect(hub.settings, user=user, store=hub.gateway.store)
    except ValidationError:
        raise SignInFailed(f"{user!r} is not a user name this platform accepts", 403) from None
    try:
        client.users.whoami()
    except AuthenticationError:
        if not config.create_users:
            raise SignInFailed(
                f"{config.name} signed you in as {user!r}, but this platform has no such "
                f"user: ask an admin to add you (`genai user add {user}`).",
                status=403,
            ) from None
        _register(hub, config, user)
    if not project:
        mine = [p.name for p in client.projects.list() if p.role is not None]
        if not mine:
            raise SignInFailed(
                f"You ({user}) are not a member of any project yet: ask a project's owner to "
                "add you.",
                status=403,
            )
        if len(mine) > 1:
            return mine
        project = mine[0]
    try:
        return project, mint_hub_key(client, project)
    except (NotFoundError, ConfigError):
        raise SignInFailed(
            f"Project {project!r} was not found, or you are not a member of it.", status=404
        ) from None
    except PermissionDenied:  # a member whose role may not hold keys (a viewer)
        raise SignInFailed(
            f"Your role in project {project!r} may not hold API keys, and a Hub session is "
            "one: ask an owner for role developer or above.",
            status=403,
        ) from None


def _register(hub: HubState, config: OidcConfig, user: str) -> None:
    """A new platform user (no role anywhere), as the provider vouched for them."""
    from sqlalchemy import select

    from genai.store import schema as t

    with hub.gateway.store.session() as s:
        found = s.scalars(
            select(t.Principal).where(t.Principal.kind == "user", t.Principal.name == user)
        ).one_or_none()
        if found is None:
            s.add(t.Principal(kind="user", name=user, is_admin=False))
            s.add(
                t.AuditEvent(
                    actor=f"oidc:{config.issuer}",
                    project_id=None,
                    project="",
                    action="user.set",
                    resource=f"user:{user}",
                    details={"admin": False, "via": "oidc"},
                )
            )
