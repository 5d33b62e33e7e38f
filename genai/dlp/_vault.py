"""The pseudonymisation vault: per session, each original value ↔ its typed token.

A session belongs to one project (and, at the gateway, to one principal): its key is a
keyed hash of the three, so two projects never share a session, whatever ids callers send.
Values are stored encrypted (AES-GCM, bound to project, session, entity type and value
hash) and found by an HMAC of the value, never by the value itself. A session lives
``ttl_s`` seconds after its last use.

Backends: the metadata store (``dlp_vault``; shared by every gateway process on the same
database), Redis (``GENAI_REDIS_URL``; one hash per session, expiring as a whole), and an
in-process one for single requests and tests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import delete, func, select, update

from genai.dlp._keys import DlpKeys
from genai.errors import BackendError, ConfigError, ConflictError, ValidationError
from genai.store import Store, mask_url
from genai.store import schema as t

__all__ = ["Assigned", "MemoryVault", "RedisVault", "SqlVault", "Vault"]

_RETRIES = 8


@dataclass(frozen=True)
class Assigned:
    """The tokens of the items asked for (in order), and the session's whole mapping."""

    tokens: list[str]
    mapping: dict[str, str]  # token ("EMAIL_ADDRESS_1") → original value


@runtime_checkable
class Vault(Protocol):
    def assign(
        self, project_id: int, session: str, items: Sequence[tuple[str, str]], *, ttl_s: int
    ) -> Assigned:
        """Tokens for ``(entity_type, value)`` items: the session's existing one for a value
        seen before, a new ``ENTITY_TYPE_<n>`` otherwise. Extends the session's life."""
        ...

    def mapping(self, project_id: int, session: str) -> dict[str, str]:
        """Every live token of the session, with its original value."""
        ...

    def drop(self, project_id: int, session: str) -> None: ...

    def purge_expired(self) -> int:
        """Delete what has expired; the number of entries deleted (where known)."""
        ...


def _value_mac(keys: DlpKeys, project_id: int, session: str, entity: str, value: str) -> str:
    return keys.mac("value", project_id, session, entity, value)


def _sealed(keys: DlpKeys, project_id: int, session: str, entity: str, mac: str, value: str) -> str:
    return keys.encrypt(value, project_id, session, entity, mac)


def _opened(keys: DlpKeys, project_id: int, session: str, entity: str, mac: str, ct: str) -> str:
    value = keys.decrypt(ct, project_id, session, entity, mac)
    if _value_mac(keys, project_id, session, entity, value) != mac:
        raise ConfigError(
            "a DLP vault entry does not match its index: the vault was changed outside the "
            "platform; drop the session (its pseudonyms cannot be trusted)"
        )
    return value


def _unique(items: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    return list(dict.fromkeys(items))


def _pairs(wanted: Sequence[tuple[str, str]], macs: Sequence[str]) -> set[tuple[str, str]]:
    return {(entity, mac) for (entity, _), mac in zip(wanted, macs, strict=True)}


def _check_size(size: int, limit: int) -> None:
    if size > limit:
        raise ValidationError(
            f"this DLP session would hold {size} personal values, more than the {limit} a "
            "session keeps: start a new session (another x-genai-session id)",
            field="session",
        )


# --------------------------------------------------------------------------- memory


class MemoryVault:
    """A vault in this process only (thread-safe): single requests, tests, batch jobs.

    Bounded: at most ``max_sessions`` sessions (beyond it the least recently used one goes,
    after the expired ones) of at most ``max_values`` values each (a session that would
    hold more is refused with a :class:`~genai.errors.ValidationError`: dropping a value
    would leave its token impossible to restore). ``clock`` is injectable for tests.
    """

    def __init__(
        self,
        *,
        max_sessions: int = 10_000,
        max_values: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_sessions < 1 or max_values < 1:
            raise ValueError("max_sessions and max_values must be at least 1")
        self.max_sessions = max_sessions
        self.max_values = max_values
        self._clock = clock
        # least recently used first
        self._sessions: dict[tuple[int, str], tuple[dict[tuple[str, str], str], float]] = {}
        self._lock = threading.Lock()

    def session_count(self) -> int:
        """Sessions held now (expired ones included until they are dropped)."""
        with self._lock:
            return len(self._sessions)

    def assign(
        self, project_id: int, session: str, items: Sequence[tuple[str, str]], *, ttl_s: int
    ) -> Assigned:
        key = (project_id, session)
        with self._lock:
            now = self._clock()
            entries, expires = self._sessions.pop(key, ({}, 0.0))
            if expires <= now:
                entries = {}
            try:
                _check_size(len(entries) + len(set(items) - set(entries)), self.max_values)
            except ValidationError:
                if entries:
                    self._sessions[key] = (entries, expires)  # unchanged, still usable
                raise
            counts: dict[str, int] = {}
            for entity, _ in entries:
                counts[entity] = counts.get(entity, 0) + 1
            tokens = []
            for item in items:
                token = entries.get(item)
                if token is None:
                    counts[item[0]] = counts.get(item[0], 0) + 1
                    token = entries[item] = f"{item[0]}_{counts[item[0]]}"
                tokens.append(token)
            self._sessions[key] = (entries, now + ttl_s)
            if len(self._sessions) > self.max_sessions:
                self._evict(now)
            return Assigned(tokens, {tok: value for (_, value), tok in entries.items()})

    def _evict(self, now: float) -> None:
        """Expired sessions first, then the least recently used (under the lock)."""
        dead = [key for key, (_, expires) in self._sessions.items() if expires <= now]
        for key in dead[: len(self._sessions) - self.max_sessions]:
            del self._sessions[key]
        while len(self._sessions) > self.max_sessions:
            self._sessions.pop(next(iter(self._sessions)))

    def mapping(self, project_id: int, session: str) -> dict[str, str]:
        with self._lock:
            entries, expires = self._sessions.get((project_id, session), ({}, 0.0))
            if expires <= self._clock():
                return {}
            return {tok: value for (_, value), tok in entries.items()}

    def drop(self, project_id: int, session: str) -> None:
        with self._lock:
            self._sessions.pop((project_id, session), None)

    def purge_expired(self) -> int:
        now = self._clock()
        with self._lock:
            dead = [key for key, (_, expires) in self._sessions.items() if expires <= now]
            for key in dead:
                del self._sessions[key]
        return len(dead)


# --------------------------------------------------------------------------- SQL


class SqlVault:
    """The vault in the metadata store's ``dlp_vault`` table (SQLite or PostgreSQL).

    A session holds at most ``max_values`` values (each request reads and decrypts its
    session's whole mapping); expired rows go at the next assignment of their session and
    in :meth:`purge_expired`. Expiry times are stored as timestamps (every process on the
    database compares them), so ``clock`` gives wall-clock seconds since the epoch
    (``time.time``; injectable for tests)."""

    def __init__(
        self,
        store: Store,
        keys: DlpKeys,
        *,
        max_values: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.keys = keys
        self.max_values = max_values
        self._clock = clock

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def assign(
        self, project_id: int, session: str, items: Sequence[tuple[str, str]], *, ttl_s: int
    ) -> Assigned:
        wanted = _unique(items)
        macs = [_value_mac(self.keys, project_id, session, e, v) for e, v in wanted]
        for attempt in range(_RETRIES):
            try:
                rows = self._assign_once(project_id, session, wanted, macs, ttl_s)
                break
            except ConflictError:  # another process numbered the same session just now
                if attempt == _RETRIES - 1:
                    raise
                time.sleep(0.005 * (attempt + 1))
        by_mac = {(row.entity_type, row.value_mac): row.token for row in rows}
        tokens_of = {item: by_mac[(item[0], mac)] for item, mac in zip(wanted, macs, strict=True)}
        return Assigned([tokens_of[item] for item in items], self._decrypt(project_id, rows))

    def _assign_once(
        self,
        project_id: int,
        session: str,
        wanted: list[tuple[str, str]],
        macs: list[str],
        ttl_s: int,
    ) -> list[Any]:
        e = t.DlpVaultEntry
        now = self._now()
        expires = now + timedelta(seconds=ttl_s)
        mine = (e.project_id == project_id, e.session_id == session)
        with self.store.session() as s:
            s.execute(delete(e).where(*mine, e.expires_at <= now))
            rows = list(s.execute(select(e).where(*mine)).scalars())
            known = {(row.entity_type, row.value_mac) for row in rows}
            _check_size(len(rows) + len(_pairs(wanted, macs) - known), self.max_values)
            top: dict[str, int] = {}
            for row in rows:
                top[row.entity_type] = max(top.get(row.entity_type, 0), row.seq)
            if rows:
                s.execute(update(e).where(*mine).values(expires_at=expires))
            for (entity, value), mac in zip(wanted, macs, strict=True):
                if (entity, mac) in known:
                    continue
                seq = top[entity] = top.get(entity, 0) + 1
                row = e(
                    project_id=project_id,
                    session_id=session,
                    entity_type=entity,
                    seq=seq,
                    token=f"{entity}_{seq}",
                    value_mac=mac,
                    ciphertext=_sealed(self.keys, project_id, session, entity, mac, value),
                    created_at=now,
                    expires_at=expires,
                )
                s.add(row)
                rows.append(row)
                known.add((entity, mac))
            s.flush()
            return rows

    def _decrypt(self, project_id: int, rows: Sequence[Any]) -> dict[str, str]:
        return {
            row.token: _opened(
                self.keys,
                project_id,
                row.session_id,
                row.entity_type,
                row.value_mac,
                row.ciphertext,
            )
            for row in rows
        }

    def mapping(self, project_id: int, session: str) -> dict[str, str]:
        e = t.DlpVaultEntry
        with self.store.session() as s:
            rows = list(
                s.execute(
                    select(e).where(
                        e.project_id == project_id,
                        e.session_id == session,
                        e.expires_at > self._now(),
                    )
                ).scalars()
            )
        return self._decrypt(project_id, rows)

    def drop(self, project_id: int, session: str) -> None:
        e = t.DlpVaultEntry
        with self.store.session() as s:
            s.execute(delete(e).where(e.project_id == project_id, e.session_id == session))

    def purge_expired(self) -> int:
        e = t.DlpVaultEntry
        now = self._now()
        with self.store.session() as s:
            count = s.scalar(select(func.count()).where(e.expires_at <= now)) or 0
            s.execute(delete(e).where(e.expires_at <= now))
        return int(count)


# --------------------------------------------------------------------------- Redis

# KEYS: values (entity:mac → token), tokens (token → entity \n mac \n ciphertext), counters
# ARGV: ttl, then entity, mac, ciphertext for each item. Returns {tokens, HGETALL tokens}.
_ASSIGN = """
local out = {}
for i = 2, #ARGV, 3 do
  local entity, mac, sealed = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local field = entity .. ':' .. mac
  local token = redis.call('HGET', KEYS[1], field)
  if not token then
    token = entity .. '_' .. redis.call('HINCRBY', KEYS[3], entity, 1)
    redis.call('HSET', KEYS[1], field, token)
    redis.call('HSET', KEYS[2], token, entity .. '\\n' .. mac .. '\\n' .. sealed)
  end
  out[#out + 1] = token
end
for k = 1, 3 do redis.call('EXPIRE', KEYS[k], tonumber(ARGV[1])) end
return {out, redis.call('HGETALL', KEYS[2])}
"""


class RedisVault:
    """The vault in Redis: three hashes per session that expire together."""

    def __init__(self, url: str, keys: DlpKeys, *, prefix: str = "genai:") -> None:
        import redis

        self.url = url
        self.keys = keys
        self.prefix = prefix
        self._client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._script = self._client.register_script(_ASSIGN)

    def _names(self, project_id: int, session: str) -> list[str]:
        tag = f"{self.prefix}dlp:{{{project_id}:{session}}}"  # one cluster slot per session
        return [f"{tag}:values", f"{tag}:tokens", f"{tag}:counters"]

    def assign(
        self, project_id: int, session: str, items: Sequence[tuple[str, str]], *, ttl_s: int
    ) -> Assigned:
        wanted = _unique(items)
        args: list[str | int] = [ttl_s]
        for entity, value in wanted:
            mac = _value_mac(self.keys, project_id, session, entity, value)
            args += [entity, mac, _sealed(self.keys, project_id, session, entity, mac, value)]
        try:
            tokens, flat = self._script(keys=self._names(project_id, session), args=args)
        except Exception as error:
            raise self._error(error) from error
        tokens_of = dict(zip(wanted, (tok.decode() for tok in tokens), strict=True))
        return Assigned(
            [tokens_of[item] for item in items], self._decrypt(project_id, session, flat)
        )

    def _decrypt(self, project_id: int, session: str, flat: Sequence[Any]) -> dict[str, str]:
        mapping = {}
        for token, packed in zip(flat[::2], flat[1::2], strict=True):
            entity, mac, sealed = packed.decode().split("\n", 2)
            mapping[token.decode()] = _opened(self.keys, project_id, session, entity, mac, sealed)
        return mapping

    def mapping(self, project_id: int, session: str) -> dict[str, str]:
        try:
            flat = self._client.hgetall(self._names(project_id, session)[1])
        except Exception as error:
            raise self._error(error) from error
        pairs = [item for kv in flat.items() for item in kv]
        return self._decrypt(project_id, session, pairs)

    def drop(self, project_id: int, session: str) -> None:
        try:
            self._client.delete(*self._names(project_id, session))
        except Exception as error:
            raise self._error(error) from error

    def purge_expired(self) -> int:
        return 0  # Redis expires sessions itself

    def close(self) -> None:
        self._client.close()

    def _error(self, error: Exception) -> BackendError:
        return BackendError(
            f"the DLP vault in Redis at {mask_url(self.url)} failed "
            f"({type(error).__name__}): check GENAI_REDIS_URL and that Redis is up",
            backend="redis",
            retryable=True,
        )
