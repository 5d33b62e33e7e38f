"""What the tenancy APIs return: plain, typed, JSON-ready records."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field

from genai.tenancy._rbac import Role

__all__ = [
    "ApiKeyInfo",
    "AuditEntry",
    "CreatedKey",
    "FeedbackRow",
    "MemberInfo",
    "ProjectInfo",
    "QuotaLimits",
    "QuotaStatus",
    "UsageEvent",
    "UsageReport",
    "UsageRow",
    "UserInfo",
]


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True)


class ProjectInfo(_Record):
    name: str
    description: str
    created_at: datetime
    created_by: str
    role: Role | None = Field(description="The caller's role here; None for a platform admin.")
    members: int


class MemberInfo(_Record):
    name: str
    kind: str
    role: Role
    since: datetime


class UserInfo(_Record):
    name: str
    is_admin: bool
    created_at: datetime


class ApiKeyInfo(_Record):
    id: int
    name: str
    prefix: str
    project: str
    role: Role
    owner: str
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None

    @property
    def status(self) -> str:
        from genai.store.schema import utcnow

        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= utcnow():
            return "expired"
        return "active"


class CreatedKey(ApiKeyInfo):
    secret: str = Field(description="The key itself. Shown once: it is not stored.")


class QuotaLimits(_Record):
    """A project's limits; None means unlimited (for ``max_in_flight``: the gateway's)."""

    requests_per_minute: int | None = Field(default=None, ge=1)
    tokens_per_day: int | None = Field(default=None, ge=1)
    budget_usd_per_month: float | None = Field(default=None, gt=0)
    adapter_slots: int | None = Field(default=None, ge=0)
    max_in_flight: int | None = Field(
        default=None,
        ge=1,
        description="Requests in progress at once, per gateway process; the gateway's own "
        "limit (GENAI_GATEWAY_MAX_IN_FLIGHT_PER_PROJECT) applies when lower.",
    )
    gpus: int | None = Field(
        default=None,
        ge=0,
        description="GPUs the project's Kubernetes deployments may request in all (every "
        "replica at its maximum); the operator also writes it as a ResourceQuota.",
    )


class QuotaStatus(_Record):
    limits: QuotaLimits
    requests_this_minute: int
    tokens_today: int
    spend_usd_this_month: float


class UsageEvent(_Record):
    """One request's usage, as the gateway (or any caller) records it in the ledger."""

    model: str
    target: str = ""
    adapter: str = ""
    prompt_version: str = ""
    prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)
    cost_usd: float = Field(default=0.0, ge=0)
    gpu_seconds: float = Field(default=0.0, ge=0)
    latency_ms: float = Field(default=0.0, ge=0)
    cache_hit: bool = False
    status: str = "ok"
    request_id: str = ""
    ts: datetime | None = None


class UsageRow(_Record):
    project: str | None = None
    model: str | None = None
    adapter: str | None = None
    day: date | None = None
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    gpu_seconds: float
    cache_hits: int
    errors: int
    avg_latency_ms: float


class UsageReport(_Record):
    group_by: tuple[str, ...]
    since: date | None
    until: date | None
    rows: list[UsageRow]
    total: UsageRow


class FeedbackRow(_Record):
    """A caller's score of one answer (``POST /v1/feedback``) with what gave the answer:
    the deployment, the target (arm) that answered, and when it answered."""

    request_id: str
    deployment: str
    target: str
    score: float
    answered_at: datetime  # the usage ledger's time of the answer
    ts: datetime  # when the feedback came


class ShadowRow(_Record):
    """A shadow target's answer to a mirrored request beside the answer the caller got.
    The texts (``prompt_text``: JSON of the request's ``messages``, ``prompt`` or ``input``
    after the request stages, DLP's pseudonyms in place of personal data) are empty unless
    the project kept them (``prompt_logging``). ``primary_*``: the caller's answer's
    tokens (prompt, completion), cost and latency from the usage ledger (None where the
    ledger has no row of the request); ``shadow_*``: the shadow call's (its tokens are
    prompt and completion together)."""

    request_id: str
    deployment: str
    ts: datetime
    primary_target: str
    shadow_target: str
    status: str  # "ok", or "error: ..." (a shadow that failed)
    similarity: float | None  # the gateway's quick character-level ratio of the answers
    prompt_text: str
    primary_text: str
    shadow_text: str
    shadow_tokens: int
    shadow_cost_usd: float
    shadow_latency_ms: float
    primary_prompt_tokens: int | None = None
    primary_completion_tokens: int | None = None
    primary_cost_usd: float | None = None
    primary_latency_ms: float | None = None


class AuditEntry(_Record):
    ts: datetime
    actor: str
    project: str
    action: str
    resource: str
    details: dict[str, object]
