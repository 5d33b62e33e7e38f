"""AI Projects: principals, roles and the permission table, API keys, quotas, the usage
ledger and showback, the audit log, and the one ``authorize`` every entry point calls."""

from genai.tenancy._counters import (
    AsyncCounters,
    AsyncMemoryCounters,
    AsyncRedisCounters,
    Counters,
    MemoryCounters,
    RedisCounters,
    SqlCounters,
)
from genai.tenancy._keys import KEY_PATTERN, Keys, parse_duration, verify_key
from genai.tenancy._projects import Projects, Users
from genai.tenancy._quotas import AsyncQuotaEnforcer, QuotaEnforcer, Quotas, load_limits
from genai.tenancy._rbac import (
    PERMISSIONS,
    Action,
    Principal,
    Resource,
    Role,
    authorize,
    parse_role,
)
from genai.tenancy._secrets import SecretInfo, Secrets, read_secret, secret_sealer
from genai.tenancy._types import (
    ApiKeyInfo,
    AuditEntry,
    CreatedKey,
    FeedbackRow,
    MemberInfo,
    ProjectInfo,
    QuotaLimits,
    QuotaStatus,
    ShadowRow,
    UsageEvent,
    UsageReport,
    UsageRow,
    UserInfo,
)
from genai.tenancy._usage import GROUPS, Audit, Usage, write_usage

__all__ = [
    "GROUPS",
    "KEY_PATTERN",
    "PERMISSIONS",
    "Action",
    "ApiKeyInfo",
    "AsyncCounters",
    "AsyncMemoryCounters",
    "AsyncQuotaEnforcer",
    "AsyncRedisCounters",
    "Audit",
    "AuditEntry",
    "Counters",
    "CreatedKey",
    "FeedbackRow",
    "Keys",
    "MemberInfo",
    "MemoryCounters",
    "Principal",
    "ProjectInfo",
    "Projects",
    "QuotaEnforcer",
    "QuotaLimits",
    "QuotaStatus",
    "Quotas",
    "RedisCounters",
    "Resource",
    "Role",
    "SecretInfo",
    "Secrets",
    "ShadowRow",
    "SqlCounters",
    "Usage",
    "UsageEvent",
    "UsageReport",
    "UsageRow",
    "UserInfo",
    "Users",
    "authorize",
    "load_limits",
    "parse_duration",
    "parse_role",
    "read_secret",
    "secret_sealer",
    "verify_key",
    "write_usage",
]
