"""What the Hub keeps in a browser: a sealed session cookie, its CSRF token, and one-time
sign-in links.

A session is the project key the person signed in with, sealed (AES-256-GCM under the
platform's secret key, ``GENAI_SECRET_KEY`` or ``GENAI_HOME/secret.key``) into an HttpOnly,
SameSite=Lax cookie. The Hub never trusts what the cookie says about roles: every request
opens it and resolves the key again through the tenancy code the API uses, so a revoked key,
a removed member or a lowered role takes effect on the next click. Sealing (not just
signing) keeps the key out of anyone's reach who copies the cookie's text from a log, and
lets every gateway process that shares the secret key read the session (no server-side
table, nothing to clean up).

A sign-in link (:func:`sign_in_link`) carries a sealed, short-lived token that names a key
minted for the local user; the Hub accepts each token once (the gateway's shared counters
remember the nonce until the token expires), like Jupyter's token links.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

from genai.errors import ConfigError, GenAIError
from genai.settings import Settings
from genai.tenancy import KEY_PATTERN, secret_sealer

__all__ = [
    "LINK_TTL_S",
    "SESSION_TTL_S",
    "LinkToken",
    "Session",
    "SessionCodec",
]

#: How long a session lasts after sign-in (the key's own expiry may end it sooner).
SESSION_TTL_S = 12 * 3600
#: How long a sign-in link may wait before it is used.
LINK_TTL_S = 15 * 60
_SESSION_CONTEXT = ("genai-hub", "session")
_LINK_CONTEXT = ("genai-hub", "sign-in-link")


class Sealer(Protocol):
    """What the Hub needs of the platform's secret-key cipher (AES-GCM bound to a context)."""

    def seal(self, value: str, *context: object) -> str: ...

    def open(self, token: str, *context: object) -> str: ...


@dataclass(frozen=True)
class Session:
    """One signed-in browser: the project key, its project, the CSRF token, when it began."""

    key: str
    project: str
    csrf: str
    issued: float

    def csrf_ok(self, given: str | None) -> bool:
        """Whether a form's (or a fetch's header's) token is this session's."""
        return bool(given) and hmac.compare_digest(self.csrf.encode(), str(given).encode())


@dataclass(frozen=True)
class LinkToken:
    """What a one-time sign-in link says: the key to sign in with, once, until ``expires``."""

    key: str
    project: str
    nonce: str
    expires: float


class SessionCodec:
    """Seals and opens sessions and link tokens with the platform's secret key.

    ``now`` is the clock (seconds since the epoch) that session and link lifetimes are
    measured in, injectable for tests."""

    def __init__(self, settings: Settings, *, now: Callable[[], float]) -> None:
        self._settings = settings
        self.now = now

    @cached_property
    def _sealer(self) -> Sealer:
        """Loaded on first use, so a gateway whose secret key is unreadable still starts
        (its Hub pages then say what to fix)."""
        return secret_sealer(self._settings)

    # ------------------------------------------------------------ sessions

    def new_session(self, key: str, project: str) -> tuple[Session, str]:
        """A fresh session (a new CSRF token) and its cookie value."""
        session = Session(key, project, secrets.token_urlsafe(32), self.now())
        body = {"k": key, "p": project, "c": session.csrf, "i": session.issued}
        return session, self._seal(body, _SESSION_CONTEXT)

    def open_session(self, cookie: str | None) -> Session | None:
        """The session a cookie holds; None when absent, forged, damaged or too old."""
        body = self._open(cookie, _SESSION_CONTEXT)
        if body is None:
            return None
        try:
            session = Session(str(body["k"]), str(body["p"]), str(body["c"]), float(body["i"]))
        except (KeyError, TypeError, ValueError):
            return None
        age = self.now() - session.issued
        if not KEY_PATTERN.match(session.key) or not 0 <= age < SESSION_TTL_S:
            return None
        return session

    # ------------------------------------------------------------ sign-in links

    def new_link(self, key: str, project: str) -> str:
        """A token for a sign-in link: ``key`` into ``project``, once, for LINK_TTL_S."""
        nonce = secrets.token_urlsafe(16)
        body = {"k": key, "p": project, "n": nonce, "e": self.now() + LINK_TTL_S}
        return self._seal(body, _LINK_CONTEXT)

    def open_link(self, token: str | None) -> LinkToken | None:
        """What a link's token says, if it is one of ours (expiry is the caller's check, so
        an expired link can be told apart from a forged one)."""
        body = self._open(token, _LINK_CONTEXT)
        if body is None:
            return None
        try:
            return LinkToken(str(body["k"]), str(body["p"]), str(body["n"]), float(body["e"]))
        except (KeyError, TypeError, ValueError):
            return None

    # ------------------------------------------------------------ sealing

    def _seal(self, body: dict[str, Any], context: tuple[str, str]) -> str:
        sealed = self._sealer.seal(json.dumps(body, separators=(",", ":")), *context)
        # URL- and cookie-safe: no '+', '/' or '=' (a cookie would be quoted, a URL escaped)
        return sealed.translate(_TO_URLSAFE).rstrip("=")

    def _open(self, text: str | None, context: tuple[str, str]) -> dict[str, Any] | None:
        if not text or len(text) > 4096:
            return None
        standard = text.translate(_FROM_URLSAFE)
        standard += "=" * (-len(standard) % 4)
        try:
            base64.b64decode(standard.encode("ascii"), validate=True)
            plain = self._sealer.open(standard, *context)
            body = json.loads(plain)
        except (ConfigError, UnicodeError, binascii.Error, ValueError):
            return None
        except GenAIError:  # a damaged cookie is a signed-out browser, never an error page
            return None
        return body if isinstance(body, dict) else None


_TO_URLSAFE = str.maketrans("+/", "-_")
_FROM_URLSAFE = str.maketrans("-_", "+/")
