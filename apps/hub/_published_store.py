"""Published apps: publish a project's deployment as a public chat app, list, unpublish.

A published app is served by the Hub at ``/hub/apps/{slug}`` to anyone, without sign-in. It
calls the gateway as the project, with a key minted for it at publishing (role developer,
named ``app-{slug}``), so the project's quotas, DLP, cache and usage ledger apply. The key
is stored sealed with the platform's secret key and never leaves the server; browsers get
app tokens (:class:`AppTokens`): sealed, short-lived, bound to the app, and revoked all at
once by :meth:`PublishedApps.revoke_tokens`. Unpublishing deletes the app and revokes its
key: its link, its tokens and its widget stop working on the next request.

Publishing, unpublishing and revoking need ``deployment:write`` (maintainers and owners);
listing needs ``registry:read``. Every change is in the audit log.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from genai import Client
from genai.errors import ConfigError, ConflictError, GenAIError, NotFoundError, ValidationError
from genai.settings import Settings
from genai.store import Store
from genai.store import schema as t
from genai.tenancy import Action, secret_sealer

__all__ = [
    "DEFAULT_REQUESTS_PER_DAY",
    "TOKEN_TTL_S",
    "AppTokens",
    "LiveApp",
    "PublishedAppInfo",
    "PublishedApps",
    "check_origin",
    "find_app",
    "unseal_key",
]

#: The daily request quota of an app published without one.
DEFAULT_REQUESTS_PER_DAY = 1000
#: How long an app token handed to a browser works (a page open longer is told to reload).
TOKEN_TTL_S = 12 * 3600
MAX_ORIGINS = 20
_MAX_QUOTA = 10**12
_SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{1,58})[a-z0-9]")
_SLUG_RULE = (
    "3-60 lower-case letters, digits and hyphens, starting and ending with a letter or "
    "digit (e.g. 'support-bot')"
)
_KEY_CONTEXT = "genai-hub/app-key"
_TOKEN_CONTEXT = "genai-hub/app-token"


@dataclass(frozen=True)
class PublishedAppInfo:
    """A published app as its project's members see it (never its key)."""

    slug: str
    project: str
    deployment: str
    title: str
    allowed_origins: tuple[str, ...]  # empty: any origin may embed it
    requests_per_day: int | None
    tokens_per_day: int | None
    key_prefix: str
    created_at: datetime
    created_by: str


@dataclass(frozen=True)
class LiveApp:
    """What the public routes need of an app: where it sends requests, as which key."""

    id: int
    project_id: int
    slug: str
    deployment: str
    title: str
    allowed_origins: tuple[str, ...]
    requests_per_day: int | None
    tokens_per_day: int | None
    token_nonce: str
    sealed_key: str

    def allows(self, origin: str) -> bool:
        """Whether a page of ``origin`` may embed the app and call it."""
        return not self.allowed_origins or origin.lower() in self.allowed_origins


def check_slug(slug: str) -> str:
    if not isinstance(slug, str) or not _SLUG.fullmatch(slug):
        raise ValidationError(f"invalid app slug {slug!r}: use {_SLUG_RULE}", field="slug")
    return slug


def check_origin(origin: str) -> str:
    """``https://host[:port]`` (or http), lower-cased, without a path: a browser's Origin."""
    text = origin.strip().rstrip("/").lower() if isinstance(origin, str) else ""
    parts = urlsplit(text)
    ok = (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and not parts.path
        and not parts.query
        and not parts.fragment
        and "@" not in parts.netloc
    )
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        ok = False
    if not ok:
        raise ValidationError(
            f"invalid origin {origin!r}: give a scheme and host, with a port if any and no "
            "path (e.g. 'https://shop.example.com' or 'http://127.0.0.1:8000')",
            field="origin",
        )
    return text


def _quota(value: int | None, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= _MAX_QUOTA:
        raise ValidationError(
            f"{field} must be a whole number from 1 to {_MAX_QUOTA}, not {value!r} "
            "(leave it out for no limit of that kind)",
            field=field,
        )
    return value


def _default_slug(deployment: str) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", deployment.lower()).strip("-")[:40].strip("-") or "app"
    return f"{base}-{secrets.token_hex(4)}"


class PublishedApps:
    """A project's published apps, as ``client``'s principal may see and change them."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._ctx = client.context

    @cached_property
    def _sealer(self) -> Any:
        return secret_sealer(self._ctx.settings)

    def publish(
        self,
        project: str,
        deployment: str,
        *,
        slug: str | None = None,
        title: str | None = None,
        origins: Iterable[str] = (),
        requests_per_day: int | None = DEFAULT_REQUESTS_PER_DAY,
        tokens_per_day: int | None = None,
    ) -> PublishedAppInfo:
        """Publish ``deployment`` at ``/hub/apps/{slug}`` (a slug of the deployment's name
        and random letters unless given). ``origins``: the sites that may embed it (none:
        any site may)."""
        allowed = tuple(dict.fromkeys(check_origin(o) for o in origins))
        if len(allowed) > MAX_ORIGINS:
            raise ValidationError(f"list at most {MAX_ORIGINS} origins", field="origin")
        rpd = _quota(requests_per_day, "requests_per_day")
        tpd = _quota(tokens_per_day, "tokens_per_day")
        chosen = check_slug(slug) if slug is not None else None
        shown = (title or "").strip()[:200]
        with self._ctx.store.session() as s:
            self._project(s, project, Action.DEPLOYMENT_WRITE)
            if chosen is not None:
                self._free(s, chosen)
        revision = self._client.registry.deployments.get(project, deployment)
        chosen = chosen or _default_slug(revision.name)
        key = self._client.keys.create(project, role="developer", name=f"app-{chosen}")
        try:
            with self._ctx.store.session() as s:
                me = self._ctx.me(s)
                proj = self._project(s, project, Action.DEPLOYMENT_WRITE)
                self._free(s, chosen)
                row = t.PublishedApp(
                    project_id=proj.id,
                    slug=chosen,
                    deployment=revision.name,
                    title=shown or revision.name,
                    key_prefix=key.prefix,
                    sealed_key=self._sealer.seal(key.secret, _KEY_CONTEXT, proj.id, chosen),
                    token_nonce=secrets.token_hex(16),
                    allowed_origins=list(allowed),
                    requests_per_day=rpd,
                    tokens_per_day=tpd,
                    created_by=me.label,
                )
                s.add(row)
                s.flush()
                self._ctx.audit(
                    s,
                    me,
                    "app.publish",
                    project=proj,
                    resource=f"app:{chosen}",
                    deployment=revision.name,
                    origins=list(allowed),
                    requests_per_day=rpd,
                    tokens_per_day=tpd,
                )
                return _info(row, proj.name)
        except GenAIError:
            self._client.keys.revoke(project, key.prefix)
            raise

    def list(self, project: str) -> builtins.list[PublishedAppInfo]:
        with self._ctx.store.session() as s:
            proj = self._project(s, project, Action.REGISTRY_READ)
            rows = s.scalars(
                select(t.PublishedApp)
                .where(t.PublishedApp.project_id == proj.id)
                .order_by(t.PublishedApp.slug)
            )
            return [_info(row, proj.name) for row in rows]

    def unpublish(self, project: str, slug: str) -> PublishedAppInfo:
        """Delete the app and revoke its key: its link, widget and tokens stop at once."""
        with self._ctx.store.session() as s:
            me = self._ctx.me(s)
            proj = self._project(s, project, Action.DEPLOYMENT_WRITE)
            row = self._row(s, proj, slug)
            info = _info(row, proj.name)
            s.delete(row)
            self._ctx.audit(s, me, "app.unpublish", project=proj, resource=f"app:{slug}")
        with contextlib.suppress(NotFoundError):  # the key was removed already
            self._client.keys.revoke(project, info.key_prefix)
        return info

    def revoke_tokens(self, project: str, slug: str) -> PublishedAppInfo:
        """End every app token handed out so far (open pages must reload)."""
        with self._ctx.store.session() as s:
            me = self._ctx.me(s)
            proj = self._project(s, project, Action.DEPLOYMENT_WRITE)
            row = self._row(s, proj, slug)
            row.token_nonce = secrets.token_hex(16)
            self._ctx.audit(s, me, "app.revoke-tokens", project=proj, resource=f"app:{slug}")
            return _info(row, proj.name)

    def _project(self, s: Session, project: str, action: Action) -> t.Project:
        return self._ctx.project(s, self._ctx.me(s), project, action)

    @staticmethod
    def _free(s: Session, slug: str) -> None:
        taken = s.scalar(select(t.PublishedApp.id).where(t.PublishedApp.slug == slug))
        if taken is not None:
            raise ConflictError(
                f"the app slug {slug!r} is taken: choose another (or leave it out for a random one)"
            )

    @staticmethod
    def _row(s: Session, proj: t.Project, slug: str) -> t.PublishedApp:
        row = s.scalars(
            select(t.PublishedApp).where(
                t.PublishedApp.project_id == proj.id, t.PublishedApp.slug == slug
            )
        ).one_or_none()
        if row is None:
            raise NotFoundError(
                f"no published app {slug!r} in project {proj.name!r}: `genai app list` shows them"
            )
        return row


def _info(row: t.PublishedApp, project: str) -> PublishedAppInfo:
    return PublishedAppInfo(
        slug=row.slug,
        project=project,
        deployment=row.deployment,
        title=row.title,
        allowed_origins=tuple(str(o) for o in row.allowed_origins or ()),
        requests_per_day=row.requests_per_day,
        tokens_per_day=row.tokens_per_day,
        key_prefix=row.key_prefix,
        created_at=row.created_at,
        created_by=row.created_by,
    )


# ------------------------------------------------------------------ the public side


def find_app(store: Store, slug: str) -> LiveApp | None:
    """The published app at ``slug``; None for a slug that is not one (or not a slug)."""
    if not isinstance(slug, str) or not _SLUG.fullmatch(slug):
        return None
    with store.session() as s:
        row = s.scalars(select(t.PublishedApp).where(t.PublishedApp.slug == slug)).one_or_none()
        if row is None:
            return None
        return LiveApp(
            id=row.id,
            project_id=row.project_id,
            slug=row.slug,
            deployment=row.deployment,
            title=row.title,
            allowed_origins=tuple(str(o) for o in row.allowed_origins or ()),
            requests_per_day=row.requests_per_day,
            tokens_per_day=row.tokens_per_day,
            token_nonce=row.token_nonce,
            sealed_key=row.sealed_key,
        )


def unseal_key(settings: Settings, app: LiveApp) -> str:
    """The app's project key (only the server ever holds it)."""
    sealer = secret_sealer(settings)
    return sealer.open(app.sealed_key, _KEY_CONTEXT, app.project_id, app.slug)


class AppTokens:
    """The tokens a published app's page hands its browser: sealed ``{app, nonce, expiry}``,
    opaque to the browser, good for one app only, until TOKEN_TTL_S or a revocation."""

    def __init__(self, settings: Settings, *, now: Callable[[], float]) -> None:
        self._settings = settings
        self._now = now

    @cached_property
    def _sealer(self) -> Any:
        return secret_sealer(self._settings)

    def new(self, app: LiveApp) -> str:
        body = {"a": app.id, "n": app.token_nonce, "e": self._now() + TOKEN_TTL_S}
        sealed: str = self._sealer.seal(json.dumps(body), _TOKEN_CONTEXT, app.slug)
        return sealed.replace("+", "-").replace("/", "_").rstrip("=")

    def problem(self, app: LiveApp, token: str | None) -> str | None:
        """None when ``token`` is a live token of ``app``, else what is wrong with it."""
        if not token or len(token) > 512:
            return "this request has no app token: load the app's page again"
        standard = token.replace("-", "+").replace("_", "/")
        standard += "=" * (-len(standard) % 4)
        try:
            body = json.loads(self._sealer.open(standard, _TOKEN_CONTEXT, app.slug))
            app_id, nonce, expires = int(body["a"]), str(body["n"]), float(body["e"])
        except (ConfigError, ValueError, KeyError, TypeError):
            return "this app token is not valid for this app: load the app's page again"
        if app_id != app.id or not secrets.compare_digest(nonce, app.token_nonce):
            return "this app token was revoked: load the app's page again"
        if expires <= self._now():
            return "this app token expired: load the app's page again"
        return None
