"""API keys: shown once, stored as a salted HMAC with a lookup prefix, scoped to one
project and one role, revocable, optionally expiring."""

from __future__ import annotations

import builtins
import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from genai._ids import int_problem
from genai._names import check_resource_name
from genai.errors import (
    AuthenticationError,
    ConflictError,
    Forbidden,
    NotFoundError,
    ValidationError,
)
from genai.store import schema as t
from genai.tenancy._rbac import Action, Principal, Resource, Role, authorize, parse_role
from genai.tenancy._types import ApiKeyInfo, CreatedKey

if TYPE_CHECKING:
    from genai._context import Context

__all__ = ["KEY_PATTERN", "Keys", "NewKeySecret", "mint_key", "parse_duration", "verify_key"]

_ALPHABET = string.ascii_lowercase + string.digits
_PREFIX_LEN = 10
#: The shape of a key as printed by ``genai key create``.
KEY_PATTERN = re.compile(r"^gk_([a-z0-9]{10})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True)
class NewKeySecret:
    prefix: str
    secret: str  # the whole key, to show the caller once
    salt: str
    digest: str


def _digest(salt: str, secret: str) -> str:
    return hmac.new(salt.encode(), secret.encode(), hashlib.sha256).hexdigest()


def mint_key() -> NewKeySecret:
    prefix = "".join(secrets.choice(_ALPHABET) for _ in range(_PREFIX_LEN))
    body = secrets.token_urlsafe(32)  # 43 characters
    salt = secrets.token_hex(16)
    return NewKeySecret(
        prefix=prefix,
        secret=f"gk_{prefix}_{body}",
        salt=salt,
        digest=_digest(salt, body),
    )


def verify_key(session: Session, key: str, *, now: datetime) -> Principal:
    """The principal a key stands for, or :class:`AuthenticationError` saying why not."""
    match = KEY_PATTERN.match(key.strip()) if isinstance(key, str) else None
    if match is None:
        raise AuthenticationError(
            "malformed API key: expected 'gk_<10 characters>_<43 characters>' as printed by "
            "`genai key create`"
        )
    prefix, body = match.groups()
    row = session.scalars(select(t.ApiKey).where(t.ApiKey.prefix == prefix)).one_or_none()
    if row is None or not hmac.compare_digest(row.digest, _digest(row.salt, body)):
        raise AuthenticationError(
            f"unknown API key gk_{prefix}_…: check it was copied whole, or create one with "
            "`genai key create`"
        )
    if row.revoked_at is not None:
        raise AuthenticationError(
            f"API key gk_{prefix}_… was revoked at {row.revoked_at:%Y-%m-%d %H:%M} UTC: "
            "create a new one with `genai key create`"
        )
    if row.expires_at is not None and row.expires_at <= now:
        raise AuthenticationError(
            f"API key gk_{prefix}_… expired at {row.expires_at:%Y-%m-%d %H:%M} UTC: "
            "create a new one with `genai key create`"
        )
    owner = session.get(t.Principal, row.principal_id)
    membership = session.get(t.Membership, (row.project_id, row.principal_id))
    if owner is None or membership is None:
        raise AuthenticationError(
            f"API key gk_{prefix}_… belongs to a principal that is no longer a member of its "
            "project: create a new key"
        )
    role = min(Role(row.role), Role(membership.role), key=lambda r: r.rank)
    return Principal(
        id=owner.id,
        name=owner.name,
        kind=owner.kind,
        grants={row.project_id: role},
        key_id=row.id,
        key_prefix=f"gk_{prefix}",
    )


_DURATION = re.compile(r"^([0-9]{1,12})\s*([smhdw])$", re.ASCII)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_LONGEST = timedelta(days=36500)  # a key for a century is a key without expiry


def parse_duration(text: str) -> timedelta:
    """``'90d'``, ``'12h'``, ``'30m'``, ``'2w'`` → a timedelta (at most 100 years)."""
    match = _DURATION.match(text.strip().lower())
    seconds = int(match.group(1)) * _UNITS[match.group(2)] if match else 0
    if not 0 < seconds <= _LONGEST.total_seconds():
        raise ValidationError(
            f"invalid duration {text!r}: use a positive number with a unit s, m, h, d or w, "
            "at most 36500d (e.g. '90d'); leave it out for a key that does not expire",
            field="expires_in",
        )
    return timedelta(seconds=seconds)


class Keys:
    """Create, list and revoke a project's API keys."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def create(
        self,
        project: str,
        *,
        role: str | Role,
        name: str = "default",
        expires_in: timedelta | str | None = None,
        service_account: str | None = None,
    ) -> CreatedKey:
        """A new key for the caller (or for one of the project's service accounts).

        The returned ``secret`` is the only copy: only a salted digest is stored. A key's
        role is at most its owner's role in the project.
        """
        key_role = parse_role(role)
        check_resource_name(name, kind="key name")
        lifetime = parse_duration(expires_in) if isinstance(expires_in, str) else expires_in
        if lifetime is not None and lifetime <= timedelta(0):
            raise ValidationError(
                f"invalid expires_in {expires_in!r}: a key's lifetime must be positive "
                "(leave it out for a key that does not expire)",
                field="expires_in",
            )
        with self._ctx.store.session() as s:
            me = self._ctx.me(s)
            proj = self._ctx.project(s, me, project, Action.KEY_CREATE)
            owner_id, owner_name = me.id, me.name
            if service_account is not None:
                authorize(me, Action.MEMBER_MANAGE, Resource("project", project, proj.id))
                account = s.scalars(
                    select(t.Principal).where(
                        t.Principal.kind == "service",
                        t.Principal.project_id == proj.id,
                        t.Principal.name == service_account,
                    )
                ).one_or_none()
                if account is None:
                    raise NotFoundError(
                        f"service account {service_account!r} not found in project {project!r}: "
                        "add it with `genai project member add --service`"
                    )
                owner_id, owner_name = account.id, account.name
            membership = s.get(t.Membership, (proj.id, owner_id))
            if membership is None:
                raise Forbidden(
                    f"{owner_name!r} is not a member of project {project!r}, and keys act as a "
                    "member: add the member first with `genai project member add`"
                )
            # A key holds at most its owner's role, and no one grants above their own
            # (a caller acting through a key acts with that key's capped role).
            ceiling = Role(membership.role)
            mine = me.role_in(proj.id)
            if not me.is_admin and mine is not None and mine < ceiling:
                ceiling = mine
            if key_role > ceiling:
                raise Forbidden(
                    f"a key for {owner_name!r} can have at most role {ceiling.value} in "
                    f"project {project!r} (neither above the member's role nor above "
                    f"{me.label}'s), not {key_role.value}"
                )
            now = t.utcnow()
            _check_room(s, proj, now, self._ctx.settings.max_keys_per_project)
            minted = mint_key()
            row = t.ApiKey(
                project_id=proj.id,
                principal_id=owner_id,
                name=name,
                prefix=minted.prefix,
                salt=minted.salt,
                digest=minted.digest,
                role=key_role.value,
                created_at=now,
                created_by=me.label,
                expires_at=now + lifetime if lifetime is not None else None,
            )
            s.add(row)
            s.flush()
            self._ctx.audit(
                s,
                me,
                "key.create",
                project=proj,
                resource=f"key:gk_{minted.prefix}",
                role=key_role.value,
                owner=owner_name,
            )
            info = _key_info(row, proj.name, owner_name)
            return CreatedKey(**info.model_dump(), secret=minted.secret)

    def list(self, project: str, *, include_revoked: bool = False) -> builtins.list[ApiKeyInfo]:
        with self._ctx.store.session() as s:
            me = self._ctx.me(s)
            proj = self._ctx.project(s, me, project, Action.KEY_READ)
            query = (
                select(t.ApiKey, t.Principal.name)
                .join(t.Principal, t.Principal.id == t.ApiKey.principal_id)
                .where(t.ApiKey.project_id == proj.id)
                .order_by(t.ApiKey.id)
            )
            if not include_revoked:
                query = query.where(t.ApiKey.revoked_at.is_(None))
            return [_key_info(row, proj.name, owner) for row, owner in s.execute(query)]

    def revoke(self, project: str, key: str) -> ApiKeyInfo:
        """Revoke a key, named by its prefix (``gk_abcdefghij``), the whole key, or its id.

        A user may revoke their own keys; other keys need ``key:revoke``. A caller acting
        through an API key may revoke that key itself, and others only with ``key:revoke``
        (so a leaked weak key cannot revoke its owner's stronger ones).
        """
        with self._ctx.store.session() as s:
            me = self._ctx.me(s)
            proj = self._ctx.project(s, me, project, Action.PROJECT_READ)
            row = _find_key(s, proj.id, key)
            shown = _key_label(key)
            if row is None:
                raise NotFoundError(f"API key {shown} not found in project {project!r}")
            own = row.id == me.key_id if me.key_id is not None else row.principal_id == me.id
            if not own:
                authorize(me, Action.KEY_REVOKE, Resource("key", shown, proj.id))
            if row.revoked_at is None:
                row.revoked_at = t.utcnow()
                self._ctx.audit(s, me, "key.revoke", project=proj, resource=f"key:gk_{row.prefix}")
            owner = s.get(t.Principal, row.principal_id)
            return _key_info(row, proj.name, owner.name if owner else "")

    def verify(self, key: str) -> Principal:
        """The principal a key stands for (what the gateway does on every request)."""
        with self._ctx.store.session() as s:
            return verify_key(s, key, now=t.utcnow())


def _key_label(text: str) -> str:
    """How messages name a key: its id or prefix, never the secret part."""
    text = text.strip()
    match = re.match(r"^gk_[a-z0-9]{10}", text)
    return match.group(0) if match else repr(text[:20])


def _check_room(s: Session, proj: t.Project, now: datetime, cap: int) -> None:
    """Refuse a key past the project's cap of active keys (unrevoked, unexpired), counted
    in the creating transaction: the project's row is locked first (PostgreSQL; SQLite's
    writers are serialised already), so two creations at once cannot both take the last."""
    s.execute(select(t.Project.id).where(t.Project.id == proj.id).with_for_update())
    active = s.scalar(
        select(func.count())
        .select_from(t.ApiKey)
        .where(
            t.ApiKey.project_id == proj.id,
            t.ApiKey.revoked_at.is_(None),
            or_(t.ApiKey.expires_at.is_(None), t.ApiKey.expires_at > now),
        )
    )
    if (active or 0) >= cap:
        raise ConflictError(
            f"project {proj.name!r} has {active} active API keys, the most this platform "
            f"allows (GENAI_MAX_KEYS_PER_PROJECT={cap}): revoke keys it no longer uses "
            f"(`genai key list --project {proj.name}`, then `genai key revoke <prefix>`), or "
            "ask the operator to raise GENAI_MAX_KEYS_PER_PROJECT"
        )


def _find_key(s: Session, project_id: int, text: str) -> t.ApiKey | None:
    text = text.strip()
    query = select(t.ApiKey).where(t.ApiKey.project_id == project_id)
    if text and (text[0].isdigit() or text[0] in "+-"):  # an id: 0-9 only, 1 to 2**63-1
        problem = int_problem(text)
        if problem is not None:
            raise ValidationError(
                f"a key is named by its prefix (gk_xxxxxxxxxx) or its id, and an id {problem}",
                field="key",
            )
        return s.scalars(query.where(t.ApiKey.id == int(text))).one_or_none()
    match = re.match(r"^gk_([a-z0-9]{10})", text)
    if match is None:
        raise ValidationError(
            f"{_key_label(text)} does not name a key: give its prefix (gk_xxxxxxxxxx) or id, as "
            "`genai key list` shows them",
            field="key",
        )
    return s.scalars(query.where(t.ApiKey.prefix == match.group(1))).one_or_none()


def _key_info(row: t.ApiKey, project: str, owner: str) -> ApiKeyInfo:
    return ApiKeyInfo(
        id=row.id,
        name=row.name,
        prefix=f"gk_{row.prefix}",
        project=project,
        role=Role(row.role),
        owner=owner,
        created_at=row.created_at,
        created_by=row.created_by,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
    )
