"""Project secrets: the credentials a project's deployments send upstream (a vendor's API
key), stored by name, encrypted at rest, and never given back.

A deployment target names a secret of its own project (``api_key_secret: vendor-key``); the
gateway decrypts it per request and sends it as the bearer token to the target's URL. So no
deployment names a variable of the gateway's environment (which holds the operator's
credentials), and a project can only ever send its own secrets.

The API is write-only: :meth:`Secrets.set` (create or replace), :meth:`Secrets.list` (names
and who changed them when, never a value) and :meth:`Secrets.delete`. Maintainers and owners
write; every member may see the names (deployment specs name them anyway). Values are
AES-256-GCM under a key derived from ``GENAI_SECRET_KEY`` (or ``GENAI_HOME/secret.key``,
made once with mode 0600), bound to the project and the name: a ciphertext copied to
another row does not decrypt. Every gateway process and CLI that shares the database must
share that key.
"""

from __future__ import annotations

import builtins
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session

from genai._crypto import MasterKey, Sealer, derive, load_master
from genai._names import check_resource_name
from genai.errors import NotFoundError, ValidationError
from genai.store import schema as t
from genai.tenancy._rbac import Action

if TYPE_CHECKING:
    from genai._context import Context
    from genai.settings import Settings

__all__ = [
    "MAX_SECRET_BYTES",
    "SecretInfo",
    "Secrets",
    "check_secret_value",
    "read_secret",
    "secret_sealer",
]

#: The longest value a secret may hold (an API key, a JWT: far less in practice).
MAX_SECRET_BYTES = 8192

_SOURCE = MasterKey(
    setting="GENAI_SECRET_KEY",
    file="secret.key",
    label="secret key",
    loss="the project secrets become unreadable and must be set again",
)


class SecretInfo(BaseModel):
    """A project secret as anyone may see it: its name and history, never its value."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="The name deployments use: `api_key_secret: <name>`.")
    project: str
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str


def secret_sealer(settings: Settings) -> Sealer:
    """The cipher of project secrets, under ``GENAI_SECRET_KEY`` or the key file."""
    master = load_master(settings.secret_key, settings.home, _SOURCE)
    return Sealer(
        derive(master, "genai-secrets/project-secret"),
        extra="serve",
        purpose="Project secrets (their encryption)",
        broken="a project secret cannot be decrypted: it was written under another key or "
        "changed. Give every gateway process and CLI the same GENAI_SECRET_KEY (or "
        "GENAI_HOME/secret.key), or set the secret again (`genai secret set`)",
    )


def check_secret_value(value: str | SecretStr) -> str:
    """The value to store, or a ValidationError that never quotes it."""
    raw = value.get_secret_value() if isinstance(value, SecretStr) else value
    if not isinstance(raw, str) or not raw:
        raise ValidationError("a secret's value must not be empty", field="value")
    if len(raw.encode("utf-8")) > MAX_SECRET_BYTES:
        raise ValidationError(
            f"a secret's value is at most {MAX_SECRET_BYTES} bytes (an API key is far less): "
            "check that the whole file was not given as the value",
            field="value",
        )
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in raw):
        raise ValidationError(
            "a secret's value must be one line without control characters (it is sent as an "
            'HTTP header): remove the newline (e.g. `printf %s "$KEY" | genai secret set …`)',
            field="value",
        )
    return raw


def _row(session: Session, project_id: int, name: str) -> t.ProjectSecret | None:
    return session.scalars(
        select(t.ProjectSecret).where(
            t.ProjectSecret.project_id == project_id, t.ProjectSecret.name == name
        )
    ).one_or_none()


def read_secret(session: Session, sealer: Sealer, project_id: int, name: str) -> str | None:
    """The value of secret ``name`` of project ``project_id`` (for the gateway, which has
    already authenticated the request's project), or None when that project has none of the
    name. Only the caller's own project is ever looked at, so the answer says nothing of
    what other projects hold."""
    row = _row(session, project_id, name)
    if row is None:
        return None
    return sealer.open(row.ciphertext, "project-secret", project_id, name)


class Secrets:
    """Set, list and delete a project's secrets (see the module docstring)."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    @cached_property
    def _sealer(self) -> Sealer:
        return secret_sealer(self._ctx.settings)

    def set(self, project: str, name: str, value: str | SecretStr) -> SecretInfo:
        """Store ``value`` as secret ``name`` of ``project``, replacing any value it had."""
        check_resource_name(name, kind="secret name")
        raw = check_secret_value(value)
        with self._ctx.store.session() as s:
            me = self._ctx.me(s)
            proj = self._ctx.project(s, me, project, Action.SECRET_WRITE)
            sealed = self._sealer.seal(raw, "project-secret", proj.id, name)
            row = _row(s, proj.id, name)
            now = t.utcnow()
            replaced = row is not None
            if row is None:
                row = t.ProjectSecret(
                    project_id=proj.id,
                    name=name,
                    ciphertext=sealed,
                    created_at=now,
                    created_by=me.label,
                    updated_at=now,
                    updated_by=me.label,
                )
                s.add(row)
            else:
                row.ciphertext, row.updated_at, row.updated_by = sealed, now, me.label
            self._ctx.audit(
                s, me, "secret.set", project=proj, resource=f"secret:{name}", replaced=replaced
            )
            s.flush()
            return _info(row, proj.name)

    def list(self, project: str) -> builtins.list[SecretInfo]:
        """The project's secrets by name: who set each and when, never a value."""
        with self._ctx.store.session() as s:
            me = self._ctx.me(s)
            proj = self._ctx.project(s, me, project, Action.SECRET_READ)
            rows = s.scalars(
                select(t.ProjectSecret)
                .where(t.ProjectSecret.project_id == proj.id)
                .order_by(t.ProjectSecret.name)
            ).all()
            return [_info(row, proj.name) for row in rows]

    def delete(self, project: str, name: str) -> None:
        """Remove secret ``name``: deployments that use it fail until it is set again."""
        with self._ctx.store.session() as s:
            me = self._ctx.me(s)
            proj = self._ctx.project(s, me, project, Action.SECRET_WRITE)
            row = _row(s, proj.id, name)
            if row is None:
                raise NotFoundError(
                    f"secret {name!r} not found in project {project!r}: "
                    f"`genai secret list --project {project}` shows its secrets"
                )
            self._ctx.audit(s, me, "secret.delete", project=proj, resource=f"secret:{name}")
            s.delete(row)


def _info(row: t.ProjectSecret, project: str) -> SecretInfo:
    return SecretInfo(
        name=row.name,
        project=project,
        created_at=row.created_at,
        created_by=row.created_by,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
    )
