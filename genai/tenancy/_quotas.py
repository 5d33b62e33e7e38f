"""Project quotas: requests per minute, tokens per day, USD budget per month, adapter slots.

:class:`QuotaEnforcer` is the hot-path logic (the gateway calls it with limits it caches);
:class:`Quotas` is the API to read and change limits. Windows are calendar windows in UTC:
the minute, the day, the month.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from genai.errors import QuotaExceeded, ValidationError
from genai.store import _schema as t
from genai.tenancy._counters import Counters
from genai.tenancy._rbac import Action
from genai.tenancy._types import QuotaLimits, QuotaStatus

if TYPE_CHECKING:
    from genai._context import Context

__all__ = ["QuotaEnforcer", "Quotas", "load_limits"]

_MICRO = 1_000_000  # budgets are counted in micro-dollars, exactly


def _windows(now: datetime) -> tuple[str, str, str]:
    return f"{now:%Y%m%d%H%M}", f"{now:%Y%m%d}", f"{now:%Y%m}"


def _seconds_to_next_minute(now: datetime) -> float:
    return 60 - now.second - now.microsecond / 1e6


def _seconds_to_next_day(now: datetime) -> float:
    tomorrow = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (tomorrow - now).total_seconds()


def _seconds_to_next_month(now: datetime) -> float:
    first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    nxt = (first + timedelta(days=32)).replace(day=1)
    return (nxt - now).total_seconds()


class QuotaEnforcer:
    """Checks and counts a project's use against its limits through shared counters."""

    def __init__(self, counters: Counters) -> None:
        self.counters = counters

    def acquire_request(
        self, project_id: int, project: str, limits: QuotaLimits, *, now: datetime | None = None
    ) -> None:
        """Count one request against the per-minute limit, or raise :class:`QuotaExceeded`."""
        rpm = limits.requests_per_minute
        if rpm is None:
            return
        now = now or datetime.now(UTC)
        minute, _, _ = _windows(now)
        added, _ = self.counters.add(f"q:{project_id}:rpm:{minute}", 1, limit=rpm, ttl_s=120)
        if not added:
            wait = _seconds_to_next_minute(now)
            raise QuotaExceeded(
                f"project {project!r} reached its limit of {rpm} requests per minute: retry in "
                f"{wait:.0f} s, or ask an owner to raise it (`genai quota set`)",
                retry_after=wait,
            )

    def check_spend(
        self, project_id: int, project: str, limits: QuotaLimits, *, now: datetime | None = None
    ) -> None:
        """Refuse a request once today's tokens or this month's budget are used up."""
        now = now or datetime.now(UTC)
        _, day, month = _windows(now)
        if limits.tokens_per_day is not None:
            used = self.counters.get(f"q:{project_id}:tok:{day}")
            if used >= limits.tokens_per_day:
                raise QuotaExceeded(
                    f"project {project!r} used {used} of its {limits.tokens_per_day} tokens for "
                    "today (UTC): wait for tomorrow, or ask an owner to raise it",
                    retry_after=_seconds_to_next_day(now),
                )
        if limits.budget_usd_per_month is not None:
            spent = self.counters.get(f"q:{project_id}:usd:{month}") / _MICRO
            if spent >= limits.budget_usd_per_month:
                raise QuotaExceeded(
                    f"project {project!r} spent ${spent:.2f} of its "
                    f"${limits.budget_usd_per_month:.2f} budget for this month: ask an owner "
                    "to raise it",
                    retry_after=_seconds_to_next_month(now),
                )

    def record_spend(
        self, project_id: int, *, tokens: int, cost_usd: float, now: datetime | None = None
    ) -> None:
        now = now or datetime.now(UTC)
        _, day, month = _windows(now)
        if tokens:
            self.counters.add(f"q:{project_id}:tok:{day}", tokens, limit=None, ttl_s=2 * 86400)
        micro = round(cost_usd * _MICRO)
        if micro:
            self.counters.add(f"q:{project_id}:usd:{month}", micro, limit=None, ttl_s=40 * 86400)

    def status(
        self, project_id: int, limits: QuotaLimits, *, now: datetime | None = None
    ) -> QuotaStatus:
        now = now or datetime.now(UTC)
        minute, day, month = _windows(now)
        return QuotaStatus(
            limits=limits,
            requests_this_minute=self.counters.get(f"q:{project_id}:rpm:{minute}"),
            tokens_today=self.counters.get(f"q:{project_id}:tok:{day}"),
            spend_usd_this_month=self.counters.get(f"q:{project_id}:usd:{month}") / _MICRO,
        )


def load_limits(session: Session, project_id: int) -> QuotaLimits:
    row = session.get(t.Quota, project_id)
    if row is None:
        return QuotaLimits()
    return QuotaLimits(
        requests_per_minute=row.requests_per_minute,
        tokens_per_day=row.tokens_per_day,
        budget_usd_per_month=row.budget_usd_per_month,
        adapter_slots=row.adapter_slots,
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
    ) -> QuotaLimits:
        """Change the limits named; ``None`` makes one unlimited, and the rest stay."""
        changes = {
            name: value
            for name, value in {
                "requests_per_minute": requests_per_minute,
                "tokens_per_day": tokens_per_day,
                "budget_usd_per_month": budget_usd_per_month,
                "adapter_slots": adapter_slots,
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
