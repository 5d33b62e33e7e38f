"""The Hub's OpenID Connect client: the provider's discovery document and keys, the
authorization URL (with PKCE) and the code exchange through authlib's httpx client, and the
ID token's checks with joserfc (authlib's JOSE library): the signature against the
provider's JWKS (asymmetric algorithms only), issuer, audience, expiry and nonce. The
routes that use it are in ``apps/hub/_oidc.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from genai.errors import ConfigError, MissingDependencyError
from genai.settings import Settings

__all__ = ["OidcClient", "OidcConfig", "SignInFailed"]

_LEEWAY_S = 60  # clock skew allowed between the provider and this process
_SAFE_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA")


class SignInFailed(Exception):
    """A sign-in that did not happen: ``message`` is shown on the sign-in page."""

    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class OidcConfig:
    """The Hub's client registration at one provider (from the settings)."""

    issuer: str
    client_id: str
    client_secret: str
    scopes: tuple[str, ...]
    user_claim: str
    name: str
    create_users: bool
    redirect_url: str | None

    @classmethod
    def from_settings(cls, settings: Settings) -> OidcConfig | None:
        """None when no issuer is set; a ConfigError naming what is missing."""
        if not settings.oidc_issuer:
            return None
        if not settings.oidc_client_id:
            raise ConfigError("GENAI_OIDC_ISSUER is set but GENAI_OIDC_CLIENT_ID is not")
        secret = (
            settings.oidc_client_secret.get_secret_value() if settings.oidc_client_secret else ""
        )
        if not secret and settings.oidc_client_secret_file is not None:
            try:
                secret = settings.oidc_client_secret_file.read_text(encoding="utf-8").strip()
            except OSError as error:
                raise ConfigError(
                    f"cannot read GENAI_OIDC_CLIENT_SECRET_FILE "
                    f"{str(settings.oidc_client_secret_file)!r}: {error.strerror}"
                ) from error
        if not secret:
            raise ConfigError(
                "GENAI_OIDC_ISSUER is set but the client secret is not: set "
                "GENAI_OIDC_CLIENT_SECRET or GENAI_OIDC_CLIENT_SECRET_FILE"
            )
        scopes = tuple(settings.oidc_scopes)
        return cls(
            issuer=settings.oidc_issuer.rstrip("/"),
            client_id=settings.oidc_client_id,
            client_secret=secret,
            scopes=scopes if "openid" in scopes else ("openid", *scopes),
            user_claim=settings.oidc_user_claim,
            name=settings.oidc_provider_name,
            create_users=settings.oidc_create_users,
            redirect_url=settings.oidc_redirect_url,
        )


class OidcClient:
    """One provider's discovery document and keys (fetched once, the keys again when an
    unknown key id appears), the code exchange and the ID token's checks. ``now`` is the
    clock (seconds since the epoch) that expiry is checked by."""

    def __init__(self, config: OidcConfig, *, now: Any) -> None:
        self.config = config
        self.now = now
        self._metadata: dict[str, Any] | None = None
        self._jwks: dict[str, Any] | None = None

    async def _get_json(self, url: str) -> dict[str, Any]:
        import httpx

        try:
            async with httpx.AsyncClient(timeout=10) as http:
                answer = await http.get(url)
            body = answer.json() if answer.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            body = None
        if not isinstance(body, dict):
            raise SignInFailed(
                f"{self.config.name} did not answer (at {url}): try again later, or ask the "
                "platform's admins to check GENAI_OIDC_ISSUER",
                status=502,
            )
        return body

    async def metadata(self) -> dict[str, Any]:
        if self._metadata is None:
            found = await self._get_json(self.config.issuer + "/.well-known/openid-configuration")
            if str(found.get("issuer", "")).rstrip("/") != self.config.issuer:
                raise SignInFailed(
                    f"{self.config.name}'s discovery document names another issuer "
                    f"({found.get('issuer')!r}): check GENAI_OIDC_ISSUER",
                    status=502,
                )
            self._metadata = found
        return self._metadata

    async def _keys(self, *, again: bool = False) -> Any:
        from joserfc.jwk import KeySet

        if self._jwks is None or again:
            self._jwks = await self._get_json(str((await self.metadata())["jwks_uri"]))
        return KeySet.import_key_set(self._jwks)  # type: ignore[arg-type]

    def _oauth(self, redirect_uri: str) -> Any:
        try:
            from authlib.integrations.httpx_client import (  # type: ignore[import-untyped]
                AsyncOAuth2Client,
            )
        except ImportError as error:
            raise MissingDependencyError("authlib", extra="hub", purpose="OIDC sign-in") from error
        return AsyncOAuth2Client(
            self.config.client_id,
            self.config.client_secret,
            scope=" ".join(self.config.scopes),
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            timeout=10,
        )

    async def authorization_url(
        self, redirect_uri: str, *, state: str, nonce: str, verifier: str
    ) -> str:
        endpoint = str((await self.metadata())["authorization_endpoint"])
        async with self._oauth(redirect_uri) as oauth:
            url, _ = oauth.create_authorization_url(
                endpoint, state=state, code_verifier=verifier, nonce=nonce
            )
        return str(url)

    async def identity(
        self, code: str, *, verifier: str, redirect_uri: str, nonce: str
    ) -> dict[str, Any]:
        """The verified claims of the ID token the code is traded for."""
        import httpx
        from authlib.integrations.base_client import (  # type: ignore[import-untyped]
            OAuthError,
        )

        endpoint = str((await self.metadata())["token_endpoint"])
        try:
            async with self._oauth(redirect_uri) as oauth:
                token = await oauth.fetch_token(endpoint, code=code, code_verifier=verifier)
        except httpx.HTTPError:
            raise SignInFailed(f"{self.config.name} did not answer: try again", 502) from None
        except OAuthError as error:
            raise SignInFailed(
                f"{self.config.name} refused the sign-in ({error.error}): start again"
            ) from None
        id_token = token.get("id_token") if isinstance(token, dict) else None
        if not isinstance(id_token, str):
            raise SignInFailed(f"{self.config.name} sent no ID token: check its client settings")
        return await self.verify(id_token, nonce=nonce)

    async def verify(self, id_token: str, *, nonce: str) -> dict[str, Any]:
        from joserfc import jwt
        from joserfc.errors import ExpiredTokenError, InvalidKeyIdError, JoseError

        offered = (await self.metadata()).get("id_token_signing_alg_values_supported")
        algorithms = [a for a in (offered or ["RS256"]) if a in _SAFE_ALGS] or ["RS256"]
        try:
            try:
                token = jwt.decode(id_token, await self._keys(), algorithms=algorithms)
            except InvalidKeyIdError:  # the provider rotated its keys: read them again
                token = jwt.decode(id_token, await self._keys(again=True), algorithms=algorithms)
        except (JoseError, ValueError):
            raise SignInFailed(
                f"the ID token from {self.config.name} did not verify against its keys"
            ) from None
        claims = jwt.JWTClaimsRegistry(
            now=int(self.now()),
            leeway=_LEEWAY_S,
            iss={"essential": True, "value": self.config.issuer},
            aud={"essential": True, "value": self.config.client_id},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
            nonce={"essential": True, "value": nonce},
        )
        try:
            claims.validate(token.claims)
        except ExpiredTokenError:
            raise SignInFailed(f"the ID token from {self.config.name} has expired") from None
        except JoseError as error:
            raise SignInFailed(
                f"the ID token from {self.config.name} was refused ({error.description})"
            ) from None
        audience = token.claims["aud"]
        several = isinstance(audience, list) and len(audience) > 1
        if several and token.claims.get("azp") != self.config.client_id:
            raise SignInFailed(f"the ID token from {self.config.name} names another party")
        return dict(token.claims)
