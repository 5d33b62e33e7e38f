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
remember the nonce until the token expires), like Jupyter's token links. Single sign-on
(``apps/hub/_oidc.py``) mints such a key too (:func:`mint_hub_key`, shared by both).

Signing out ends the session on the server, not only in the browser that asked: the
session's id (a hash of its CSRF token) is recorded as signed out in the gateway's shared
counters until the session would have expired, and a key minted for the session is revoked,
so a copy of the cookie stops working at its next request.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

from genai.errors import ConfigError, GenAIError
from genai.settings import Settings
from genai.tenancy import KEY_PATTERN, secret_sealer

if TYPE_CHECKING:
    from genai import Client

__all__ = [
    "HUB_KEY_NAME",
    "LINK_TTL_S",
    "SESSION_TTL_S",
    "LinkToken",
    "Session",
    "SessionCodec",
    "mint_hub_key",
]

#: The name of the keys the Hub mints for a sign-in link or single sign-on.
HUB_KEY_NAME = "hub-sign-in"

#: How long a session lasts after sign-in (the key's own expiry may end it sooner).
SESSION_TTL_S = 12 * 3600
#: How long a sign-in link may wait before it is used.
LINK_TTL_S = 15 * 60
_SESSION_CONTEXT = ("genai-hub", "session")
_LINK_CONTEXT = ("genai-hub", "sign-in-link")


class SignOutRecord(Protocol):
    """Where signed-out sessions are remembered (the gateway's shared counters)."""

    def add(self, key: str, amount: int, *, limit: int | None, ttl_s: int) -> tuple[bool, int]: ...

    def get(self, key: str) -> int: ...


class Sealer(Protocol):
    """What the Hub needs of the platform's secret-key cipher (AES-GCM bound to a context)."""

    def seal(self, value: str, *context: object) -> str: ...

    def open(self, token: str, *context: object) -> str: ...


@dataclass(frozen=True)
class Session:
    """One signed-in browser: the project key, its project, the CSRF token, when it began,
    and whether the key was minted for this session (revoked when it signs out)."""

    key: str
    project: str
    csrf: str
    issued: float
    minted: bool = False

    @property
    def id(self) -> str:
        """A name of this session that reveals nothing of it (a hash of its CSRF token)."""
        return hashlib.sha256(b"genai-hub-session:" + self.csrf.encode()).hexdigest()[:32]

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

    def new_session(self, key: str, project: str, *, minted: bool = False) -> tuple[Session, str]:
        """A fresh session (a new CSRF token) and its cookie value; ``minted``: the key was
        made for this session alone."""
        session = Session(key, project, secrets.token_urlsafe(32), self.now(), minted)
        body = {"k": key, "p": project, "c": session.csrf, "i": session.issued, "m": minted}
        return session, self._seal(body, _SESSION_CONTEXT)

    def open_session(self, cookie: str | None) -> Session | None:
        """The session a cookie holds; None when absent, forged, damaged or too old."""
        body = self._open(cookie, _SESSION_CONTEXT)
        if body is None:
            return None
        try:
            session = Session(
                str(body["k"]),
                str(body["p"]),
                str(body["c"]),
                float(body["i"]),
                body.get("m") is True,
            )
        except (KeyError, TypeError, ValueError):
            return None
        age = self.now() - session.issued
        if not KEY_PATTERN.match(session.key) or not 0 <= age < SESSION_TTL_S:
            return None
        return session

    @staticmethod
    def sign_out(session: Session, record: SignOutRecord) -> None:
        """Remember that ``session`` signed out, until it would have expired anyway."""
        record.add(_signed_out(session), 1, limit=None, ttl_s=SESSION_TTL_S + 60)

    @staticmethod
    def signed_out(session: Session, record: SignOutRecord) -> bool:
        """Whether ``session`` signed out (on any gateway process sharing the counters)."""
        return record.get(_signed_out(session)) > 0

    # ------------------------------------------------------------ other sealed values

    def seal(self, body: dict[str, Any], purpose: str) -> str:
        """``body`` (JSON) sealed for ``purpose`` only: URL- and cookie-safe text."""
        return self._seal(body, ("genai-hub", purpose))

    def open(self, text: str | None, purpose: str) -> dict[str, Any] | None:
        """What :meth:`seal` sealed for ``purpose``; None for anything else."""
        return self._open(text, ("genai-hub", purpose))

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


def _signed_out(session: Session) -> str:
    return f"genai-hub:signed-out:{session.id}"


def mint_hub_key(client: Client, project: str) -> str:
    """A key for ``client``'s user in ``project`` (named ``hub-sign-in``, the user's role,
    expiring with a session), after revoking the user's earlier ``hub-sign-in`` keys of the
    project (which signs out the browsers they signed in). A NotFoundError when the user
    may not see the project; a ConfigError when they see it without a role (an admin)."""
    role = client.projects.get(project).role
    if role is None:
        raise ConfigError(
            f"you are not a member of project {project!r} (platform admins see it without "
            "a role): add yourself with `genai project member add` to sign in to its Hub"
        )
    me = client.users.whoami().name
    for old in client.keys.list(project):
        if old.name == HUB_KEY_NAME and old.owner == me and old.status == "active":
            client.keys.revoke(project, old.prefix)
    key = client.keys.create(project, role=role, name=HUB_KEY_NAME, expires_in=f"{SESSION_TTL_S}s")
    return key.secret


_TO_URLSAFE = str.maketrans("+/", "-_")
_FROM_URLSAFE = str.maketrans("-_", "+/")
