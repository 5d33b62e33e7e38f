"""A fake OpenID Connect provider on 127.0.0.1, for tests of single sign-on.

It serves what a real provider serves to a web app's authorization-code flow:
``/.well-known/openid-configuration``, ``/authorize`` (it approves the configured user at
once and redirects back with a code), ``/token`` (the code, the client's secret and the
PKCE verifier are checked; the answer carries an ID token), and ``/jwks`` (the public half
of an RSA key made for this fake). ID tokens are RS256 JWTs signed with that key.

Attributes change what it answers next (set them between requests):

- ``user``: the claims of the person who signs in (``sub`` at least),
- ``now``: the clock tokens are issued by (seconds since the epoch; an old clock issues
  tokens that have already expired),
- ``tamper``: sign ID tokens with another key than the one ``/jwks`` publishes,
- ``issuer`` / ``audience``: what ID tokens claim (default: its own URL / the client id).

Needs the ``hub`` extra (authlib and its JOSE library, joserfc; Starlette and uvicorn).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from genai.testing._served import Served

__all__ = ["FakeOIDCProvider"]


@dataclass(frozen=True)
class _Grant:
    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str | None
    claims: dict[str, Any]


class FakeOIDCProvider(Served):
    """One fake provider: use it as a context manager to serve it (``url`` is then its
    issuer URL), or serve ``app`` yourself with :func:`genai.testing.running_server` and
    set ``url``."""

    def __init__(
        self,
        *,
        user: dict[str, Any] | None = None,
        client_id: str = "genai-hub",
        client_secret: str = "hub-secret",
        token_ttl_s: int = 300,
        now: Callable[[], float] = time.time,
    ) -> None:
        from joserfc.jwk import RSAKey

        self.user: dict[str, Any] = dict(
            user or {"sub": "u-1", "preferred_username": "alice", "email": "alice@example.com"}
        )
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_ttl_s = token_ttl_s
        self.now = now
        self.tamper = False
        self.issuer: str | None = None
        self.audience: str | None = None
        self.url = ""
        self.authorize_requests: list[dict[str, str]] = []  # the query of each /authorize
        self._key = RSAKey.generate_key(2048, parameters={"kid": "fake-1", "use": "sig"})
        self._other = RSAKey.generate_key(2048, parameters={"kid": "fake-1", "use": "sig"})
        self._grants: dict[str, _Grant] = {}
        self.app = self._build()

    def id_token(self, *, nonce: str | None, **extra: Any) -> str:
        """An ID token as ``/token`` would issue it now (``extra`` claims win)."""
        from joserfc import jwt

        issued = int(self.now())
        claims: dict[str, Any] = {
            "iss": self.issuer or self.url,
            "aud": self.audience or self.client_id,
            "iat": issued,
            "exp": issued + self.token_ttl_s,
            **self.user,
            **extra,
        }
        if nonce is not None:
            claims["nonce"] = nonce
        key = self._other if self.tamper else self._key
        return jwt.encode({"alg": "RS256", "kid": "fake-1"}, claims, key)

    # ------------------------------------------------------------ the app

    def _build(self) -> Any:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse, RedirectResponse, Response
        from starlette.routing import Route

        def discovery(_: Request) -> Response:
            return JSONResponse(
                {
                    "issuer": self.url,
                    "authorization_endpoint": self.url + "/authorize",
                    "token_endpoint": self.url + "/token",
                    "jwks_uri": self.url + "/jwks",
                    "response_types_supported": ["code"],
                    "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["RS256"],
                    "code_challenge_methods_supported": ["S256"],
                    "token_endpoint_auth_methods_supported": [
                        "client_secret_basic",
                        "client_secret_post",
                    ],
                }
            )

        def jwks(_: Request) -> Response:
            return JSONResponse({"keys": [self._key.as_dict(private=False)]})

        def authorize(request: Request) -> Response:
            query = dict(request.query_params)
            self.authorize_requests.append(query)
            problem = self._check_authorize(query)
            if problem:
                return JSONResponse({"error": "invalid_request", "detail": problem}, 400)
            code = secrets.token_urlsafe(24)
            self._grants[code] = _Grant(
                query["client_id"],
                query["redirect_uri"],
                query["code_challenge"],
                query.get("nonce"),
                dict(self.user),
            )
            back = {"code": code, "state": query.get("state", "")}
            separator = "&" if "?" in query["redirect_uri"] else "?"
            return RedirectResponse(query["redirect_uri"] + separator + urlencode(back), 302)

        async def token(request: Request) -> Response:
            form = {k: str(v) for k, v in (await request.form()).items()}
            client_id, secret = _client_auth(request.headers.get("authorization"), form)
            if client_id != self.client_id or not hmac.compare_digest(
                secret.encode(), self.client_secret.encode()
            ):
                return JSONResponse({"error": "invalid_client"}, 401)
            grant = self._grants.pop(form.get("code", ""), None)  # a code works once
            if grant is None or form.get("grant_type") != "authorization_code":
                return JSONResponse({"error": "invalid_grant"}, 400)
            if form.get("redirect_uri") != grant.redirect_uri or grant.client_id != client_id:
                return JSONResponse({"error": "invalid_grant", "detail": "redirect_uri"}, 400)
            if _s256(form.get("code_verifier", "")) != grant.challenge:
                return JSONResponse({"error": "invalid_grant", "detail": "PKCE"}, 400)
            body = {
                "access_token": secrets.token_urlsafe(24),
                "token_type": "Bearer",
                "expires_in": self.token_ttl_s,
                "id_token": self.id_token(nonce=grant.nonce, **grant.claims),
            }
            return JSONResponse(body, headers={"cache-control": "no-store"})

        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", discovery),
                Route("/jwks", jwks),
                Route("/authorize", authorize),
                Route("/token", token, methods=["POST"]),
            ]
        )

    def _check_authorize(self, query: dict[str, str]) -> str:
        if query.get("client_id") != self.client_id:
            return "unknown client_id"
        if query.get("response_type") != "code":
            return "response_type must be code"
        if not query.get("redirect_uri"):
            return "redirect_uri missing"
        if "openid" not in query.get("scope", "").split():
            return "scope must include openid"
        if not query.get("code_challenge") or query.get("code_challenge_method") != "S256":
            return "PKCE (S256) is required"
        return ""


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _client_auth(header: str | None, form: dict[str, str]) -> tuple[str, str]:
    """The client's id and secret: HTTP Basic (client_secret_basic) or the form's fields."""
    from urllib.parse import unquote

    if header and header.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(header[6:]).decode("utf-8")
        except ValueError:
            return "", ""
        client_id, _, secret = decoded.partition(":")
        return unquote(client_id), unquote(secret)
    return form.get("client_id", ""), form.get("client_secret", "")
