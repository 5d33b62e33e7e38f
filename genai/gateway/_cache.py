"""What the gateway keeps in memory so a request touches no database: who a key is, and
where a project's deployments send traffic.

Each keeps at most ``max_entries`` (expired ones go first, then the oldest). Entries live
``ttl_s`` seconds (a revoked key or a changed deployment takes effect within
that time in every gateway process, at once in the process that made the change). A key's
entry never outlives the key's own expiry. Bad keys are remembered briefly too, so a flood
of them does not reach the database; concurrent misses for one key share one lookup.
Seconds are those of ``clock`` (``time.monotonic`` unless a test passes its own).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import func, select

from genai.errors import AuthenticationError, GenAIError, NotFoundError, ValidationError
from genai.gateway._spec import DeploymentSpec, parse_spec
from genai.store import Store
from genai.store import schema as t
from genai.tenancy import KEY_PATTERN, Principal, QuotaLimits, load_limits, verify_key

__all__ = ["Caller", "CallerCache", "Route", "RouteTable"]

K = TypeVar("K")
V = TypeVar("V")


class _TTLCache(Generic[K, V]):
    """A small TTL map with single-flight loading (one load per key at a time). Entries
    expire in seconds of ``clock`` (injectable for tests)."""

    def __init__(
        self, max_entries: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._entries: dict[K, tuple[float, V | GenAIError]] = {}
        self._loading: dict[K, asyncio.Future[V | GenAIError]] = {}
        self._max = max_entries
        self._clock = clock

    async def get(self, key: K, load: Callable[[], Awaitable[tuple[V | GenAIError, float]]]) -> V:
        entry = self._entries.get(key)
        if entry is not None and entry[0] > self._clock():
            return _unwrap(entry[1])
        pending = self._loading.get(key)
        if pending is None:
            pending = asyncio.get_running_loop().create_future()
            self._loading[key] = pending
            try:
                value, ttl = await load()
                if len(self._entries) >= self._max:
                    self._evict()
                self._entries[key] = (self._clock() + ttl, value)
                pending.set_result(value)
            except BaseException as error:
                pending.set_exception(error)
                pending.exception()  # retrieved: no "never retrieved" warning
                raise
            finally:
                self._loading.pop(key, None)
        return _unwrap(await asyncio.shield(pending))

    def drop(self, predicate: Callable[[K, V | GenAIError], bool] | None = None) -> None:
        if predicate is None:
            self._entries.clear()
            return
        for key in [k for k, (_, v) in self._entries.items() if predicate(k, v)]:
            del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)

    def _evict(self) -> None:
        now = self._clock()
        self._entries = {k: e for k, e in self._entries.items() if e[0] > now}
        while len(self._entries) >= self._max:
            self._entries.pop(next(iter(self._entries)))


def _unwrap(value: V | GenAIError) -> V:
    if isinstance(value, GenAIError):
        # a fresh traceback each time: re-raising one remembered error would chain every
        # raise's frames onto it for as long as it is cached
        raise value.with_traceback(None)
    return value


@dataclass(frozen=True)
class Caller:
    """An authenticated key: its principal, its project, and the project's quotas."""

    principal: Principal
    project_id: int
    project: str
    options: dict[str, Any]
    limits: QuotaLimits


class CallerCache:
    def __init__(
        self,
        store: Store,
        *,
        ttl_s: float = 10.0,
        negative_ttl_s: float = 2.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._ttl = ttl_s
        self._negative_ttl = negative_ttl_s
        self._cache: _TTLCache[str, Caller] = _TTLCache(max_entries, clock=clock)

    async def resolve(self, key: str) -> Caller:
        if not KEY_PATTERN.match(key):
            raise AuthenticationError(
                "malformed API key: expected 'gk_<10 characters>_<43 characters>' as printed by "
                "`genai key create`"
            )
        return await self._cache.get(key, lambda: asyncio.to_thread(self._load, key))

    def invalidate(self, *, project_id: int | None = None) -> None:
        """Forget cached callers (of one project, or all)."""
        if project_id is None:
            self._cache.drop()
        else:
            self._cache.drop(lambda _, v: isinstance(v, Caller) and v.project_id == project_id)

    def _load(self, key: str) -> tuple[Caller | GenAIError, float]:
        now = t.utcnow()
        with self._store.session() as s:
            try:
                principal = verify_key(s, key, now=now)
            except AuthenticationError as error:
                return error, self._negative_ttl
            assert principal.key_id is not None
            row = s.get(t.ApiKey, principal.key_id)
            project_id = next(iter(principal.grants))
            project = s.get(t.Project, project_id)
            assert row is not None and project is not None
            ttl = self._ttl
            if row.expires_at is not None:
                ttl = min(ttl, max(0.0, (row.expires_at - now).total_seconds()))
            caller = Caller(
                principal,
                project_id,
                project.name,
                dict(project.options),
                load_limits(s, project_id),
            )
            return caller, ttl


@dataclass(frozen=True)
class Route:
    """A deployment's newest revision, ready to route."""

    deployment: str
    revision: int
    spec: DeploymentSpec | None
    problem: str = ""  # why the spec cannot route, when it cannot

    def usable(self) -> DeploymentSpec:
        if self.spec is None:
            raise ValidationError(
                f"deployment {self.deployment!r} (revision {self.revision}) cannot take traffic: "
                f"{self.problem}. Give it targets with `genai deploy apply`",
                field="model",
            )
        return self.spec


class RouteTable:
    """The newest revision of every deployment of a project, by name."""

    def __init__(
        self,
        store: Store,
        *,
        ttl_s: float = 5.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._ttl = ttl_s
        self._cache: _TTLCache[int, dict[str, Route]] = _TTLCache(max_entries, clock=clock)

    async def get(self, project_id: int, name: str) -> Route:
        routes = await self._cache.get(
            project_id, lambda: asyncio.to_thread(self._load, project_id)
        )
        route = routes.get(name)
        if route is None:
            raise NotFoundError(f"The model `{name}` does not exist.")
        return route

    async def all(self, project_id: int) -> dict[str, Route]:
        return await self._cache.get(project_id, lambda: asyncio.to_thread(self._load, project_id))

    def invalidate(self, project_id: int | None = None) -> None:
        self._cache.drop(None if project_id is None else (lambda k, _: k == project_id))

    def _load(self, project_id: int) -> tuple[dict[str, Route] | GenAIError, float]:
        newest = (
            select(t.Deployment.name, func.max(t.Deployment.version).label("v"))
            .where(t.Deployment.project_id == project_id)
            .group_by(t.Deployment.name)
            .subquery()
        )
        with self._store.session() as s:
            rows = s.scalars(
                select(t.Deployment)
                .join(
                    newest,
                    (newest.c.name == t.Deployment.name) & (newest.c.v == t.Deployment.version),
                )
                .where(t.Deployment.project_id == project_id)
            ).all()
        routes = {}
        for row in rows:
            try:
                routes[row.name] = Route(row.name, row.version, parse_spec(row.spec))
            except ValidationError as error:
                routes[row.name] = Route(row.name, row.version, None, problem=error.message)
        return routes, self._ttl
