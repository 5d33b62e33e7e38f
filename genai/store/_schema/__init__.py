"""The metadata store's tables (SQLAlchemy 2 declarative).

Every table that holds a tenant's data carries ``project_id`` with ``ON DELETE CASCADE``:
deleting a project deletes everything of it, in one transaction. The audit log is the
exception: it outlives the project it speaks of.

Alembic migrations under ``migrations/versions`` must produce exactly these tables; a test
compares them.
"""

from genai.store._schema._base import Base, utcnow
from genai.store._schema._capabilities import (
    CacheCounter,
    CacheEntry,
    CacheHit,
    DlpVaultEntry,
    KbAnswer,
    KbDocument,
    KnowledgeBase,
)
from genai.store._schema._core import (
    Adapter,
    Alias,
    AliasEvent,
    ApiKey,
    AuditEvent,
    Counter,
    Dataset,
    Deployment,
    EvalRun,
    Feedback,
    LineageEdge,
    Membership,
    Model,
    Principal,
    Project,
    ProjectSecret,
    PromptVersion,
    Quota,
    Run,
    RunMetric,
    ShadowResult,
    UsageRecord,
)

__all__ = [
    "Adapter",
    "Alias",
    "AliasEvent",
    "ApiKey",
    "AuditEvent",
    "Base",
    "CacheCounter",
    "CacheEntry",
    "CacheHit",
    "Counter",
    "Dataset",
    "Deployment",
    "DlpVaultEntry",
    "EvalRun",
    "Feedback",
    "KbAnswer",
    "KbDocument",
    "KnowledgeBase",
    "LineageEdge",
    "Membership",
    "Model",
    "Principal",
    "Project",
    "ProjectSecret",
    "PromptVersion",
    "Quota",
    "Run",
    "RunMetric",
    "ShadowResult",
    "UsageRecord",
    "utcnow",
]
