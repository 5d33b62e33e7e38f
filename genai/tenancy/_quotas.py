"""Project quotas: requests per minute, tokens per day, USD budget per month, adapter slots,
requests in progress at once (``max_in_flight``: the gateway enforces it per process).

:class:`QuotaEnforcer` is the hot-path logic (the gateway calls it with limits it caches);
:class:`Quotas` is the API to read and change limits. Windows are calendar windows in UTC:
the minute, the day, the month.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from genai.errors import QuotaExceeded, ValidationError
from genai.store import schema as t
from genai.tenancy._counters import AsyncCounters, Counters
from genai.tenancy._rbac import Action
from genai.tenancy._types import QuotaLimits, QuotaStatus

if TYPE_CHECKING:
    from genai._context import Context

__all__ = ["AsyncQuotaEnforcer", "QuotaEnforcer", "Quotas", "load_limits"]

_MICRO = 1_000_000  # budgets are counted in micro-dollars, exactly


_TTL_RPM, _TTL_TOK, _TTL_USD = 120, 2 * 86400, 40 * 86400


@functools.lru_cache(maxsize=4)
def _window_names(minute: datetime) -> tuple[str, str, str]:
    """The names of a minute's windows (formatted once a minute, not once a request)."""
    return f"{minute:%Y%m%d%H%M}", f"{minute:%Y%m%d}", f"{minute:%Y%m}"


@dataclass(frozen=True)
class _Windows:
    """The counter keys of a project's current minute, day and month."""

    now: datetime
    rpm: str
    tok: str
    usd: str

    @classmethod
    def of(cls, project_id: int, now: datetime) -> _Windows:
        minute, day, month = _window_names(now.replace(second=0, microsecond=0))
        return cls(
            now,
            f"q:{project_id}:rpm:{minute}",
            f"q:{project_id}:tok:{day}",
            f"q:{project_id}:usd:{month}",
        )

    def spend_increments(self, tokens: int, cost_usd: float) -> list[tuple[str, int, int]]:
        micro = round(cost_usd * _MICRO)
        return [
            (key, amount, ttl)
            for key, amount, ttl in ((self.tok, tokens, _TTL_TOK), (self.usd, micro, _TTL_USD))
            if amount
        ]


def _seconds_to_next_minute(now: datetime) -> float:
    return 60 - now.second - now.microsecond / 1e6


def _seconds_to_next_day(now: datetime) -> float:
    tomorrow = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (tomorrow - now).total_seconds()


def _seconds_to_next_month(now: datetime) -> float:
    first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    nxt = (first + timedelta(days=32)).replace(day=1)
    return (nxt - now).total_seconds()


def _rpm_refused(project: str, rpm: int, now: datetime) -> QuotaExceeded:
    wait = _seconds_to_next_minute(now)
    return QuotaExceeded(
        f"project {project!r} reached its limit of {rpm} requests per minute: retry in "
        f"{wait:.0f} s, or ask an owner to raise it (`genai quota set`)",
        retry_after=wait,
    )


def _spend_refusal(
    project: str, limits: QuotaLimits, tokens: int, micro_usd: int, now: datetime
) -> QuotaExceeded | None:
    if limits.tokens_per_day is not None and tokens >= limits.tokens_per_day:
        return QuotaExceeded(
            f"project {project!r} used {tokens} of its {limits.tokens_per_day} tokens for "
            "today (UTC): wait for tomorrow, or ask an owner to raise it",
            retry_after=_seconds_to_next_day(now),
        )
    spent = micro_usd / _MICRO
    if limits.budget_usd_per_month is not None and spent >= limits.budget_usd_per_month:
        return QuotaExceeded(
            f"project {project!r} spent ${spent:.2f} of its ${limits.budget_usd_per_month:.2f} "
            "budget for this month: ask an owner to raise it",
            retry_after=_seconds_to_next_month(now),
        )
    return None


def _utcnow() -> datetime:
    return datetime.now(UTC)


class QuotaEnforcer:
    """Checks and counts a project's use against its limits through shared counters."""

    def __init__(self, counters: Counters, *, now: Callable[[], datetime] | None = None) -> None:
        self.counters = counters
        self._now = now or _utcnow  # the windows' clock (a test's ManualClock.now)

    def acquire_request(
        self, project_id: int, project: str, limits: QuotaLimits, *, now: datetime | None = None
    ) -> None:
        """Count one request against the per-minute limit, or raise :class:`QuotaExceeded`."""
        rpm = limits.requests_per_minute
        if rpm is None:
            return
        w = _Windows.of(project_id, now or self._now())
        added, _ = self.counters.add(w.rpm, 1, limit=rpm, ttl_s=_TTL_RPM)
        if not added:
            raise _rpm_refused(project, rpm, w.now)

    def check_spend(
        self, project_id: int, project: str, limits: QuotaLimits, *, now: datetime | None = None
    ) -> None:
        """Refuse a request once today's tokens or this month's budget are used up."""
        w = _Windows.of(project_id, now or self._now())
        tokens = self.counters.get(w.tok) if limits.tokens_per_day is not None else 0
        usd = self.counters.get(w.usd) if limits.budget_usd_per_month is not None else 0
        refusal = _spend_refusal(project, limits, tokens, usd, w.now)
        if refusal is not None:
            raise refusal

    def record_spend(
        self, project_id: int, *, tokens: int, cost_usd: float, now: datetime | None = None
    ) -> None:
        windows = _Windows.of(project_id, now or self._now())
        for key, amount, ttl in windows.spend_increments(tokens, cost_usd):
            self.counters.add(key, amount, limit=None, ttl_s=ttl)

    def status(
        self, project_id: int, limits: QuotaLimits, *, now: datetime | None = None
    ) -> QuotaStatus:
        w = _Windows.of(project_id, now or self._now())
        return QuotaStatus(
            limits=limits,
            requests_this_minute=self.counters.get(w.rpm),
            tokens_today=self.counters.get(w.tok),
            spend_usd_this_month=self.counters.get(w.usd) / _MICRO,
        )


class AsyncQuotaEnforcer:
    """:class:`QuotaEnforcer` over async counters, for the gateway's event loop."""

    def __init__(
        self, counters: AsyncCounters, *, now: Callable[[], datetime] | None = None
    ) -> None:
        self.counters = counters
        self._now = now or _utcnow  # the windows' clock (a test's ManualClock.now)

    async def admit(
        self, project_id: int, project: str, limits: QuotaLimits, *, now: datetime | None = None
    ) -> None:
        """Refuse when a spend limit is used up, then take a request slot (or refuse)."""
        w = _Windows.of(project_id, now or self._now())
        tokens = await self.counters.get(w.tok) if limits.tokens_per_day is not None else 0
        usd = await self.counters.get(w.usd) if limits.budget_usd_per_month is not None else 0
        refusal = _spend_refusal(project, limits, tokens, usd, w.now)
        if refusal is not None:
            raise refusal
        rpm = limits.requests_per_minute
        if rpm is not None:
            added, _ = await self.counters.add(w.rpm, 1, limit=rpm, ttl_s=_TTL_RPM)
            if not added:
                raise _rpm_refused(project, rpm, w.now)

    async def record_spend(
        self, project_id: int, *, tokens: int, cost_usd: float, now: datetime | None = None
    ) -> None:
        windows = _Windows.of(project_id, now or self._now())
        for key, amount, ttl in windows.spend_increments(tokens, cost_usd):
            await self.counters.add(key, amount, limit=None, ttl_s=ttl)


def load_limits(session: Session, project_id: int) -> QuotaLimits:
    row = session.get(t.Quota, project_id)
    if row is None:
        return QuotaLimits()
    return QuotaLimits(
        requests_per_minute=row.requests_per_minute,
        tokens_per_day=row.tokens_per_day,
        budget_usd_per_month=row.budget_usd_per_month,
        adapter_slots=row.adapter_slots,
        max_in_flight=row.max_in_flight,
        gpus=row.gpus,
    )


_UNSET: Any = object()


class Quotas:
    """Read and change a project's quotas; take a request slot as the gateway does."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self.enforcer = QuotaEnforcer(ctx.counters)

    def get(self, project: str) -> QuotaStatus:
        with self._ctx.store.session() as s:
            me = self._ctx.me(s)
            proj = self._ctx.project(s, me, project, Action.QUOTA_READ)
            limits = load_limits(s, proj.id)
        return self.enforcer.status(proj.id, limits)

    def set(
        self,
        project: str,
        *,
        requests_per_minute: int | None = _UNSET,
        tokens_per_day: int | None = _UNSET,
        budget_usd_per_month: float | None = _UNSET,
        adapter_slots: int | None = _UNSET,
        max_in_flight: int | None = _UNSET,
        gpus: int | None = _UNSET,
    ) -> QuotaLimits:
        """Change the limits named; ``None`` makes one unlimited, and the rest stay."""
        changes = {
            name: value
            for name, value in {
                "requests_per_minute": requests_per_minute,
                "tokens_per_day": tokens_per_day,
                "budget_usd_per_month": budget_usd_per_month,
                "adapter_slots": adapter_slots,
                "max_in_flight": max_in_flight,
                "gpus": gpus,
            }.items()
            if value is not _UNSET
        }
        with self._ctx.store.session() as s:
            me = self._ctx.me(s)
            proj = self._ctx.project(s, me, project, Action.QUOTA_UPDATE)
            merged = load_limits(s, proj.id).model_dump() | changes
            try:
                limits = QuotaLimits(**merged)
            except Exception as error:  # pydantic's ValidationError: name the field
                raise ValidationError(f"invalid quota: {error}") from None
            row = s.get(t.Quota, proj.id)
            if row is None:
                row = t.Quota(project_id=proj.id)
                s.add(row)
            for name, value in limits.model_dump().items():
                setattr(row, name, value)
            self._ctx.audit(
                s, me, "quota.set", project=proj, resource=f"project:{project}", **changes
            )
            return limits

    def acquire(self, project: str) -> None:
        """Take one request slot and check the token and budget limits, or raise."""
        with self._ctx.store.session() as s:
            me = self._ctx.me(s)
            proj = self._ctx.project(s, me, project, Action.MODEL_INVOKE)
            limits = load_limits(s, proj.id)
        self.enforcer.check_spend(proj.id, project, limits)
        self.enforcer.acquire_request(proj.id, project, limits)
