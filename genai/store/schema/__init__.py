"""The metadata store's tables (SQLAlchemy 2 declarative), for queries of other packages.

    from genai.store import schema as t
    with store.session() as s:
        s.scalars(select(t.Project).where(t.Project.name == "demo"))

Every table that holds a tenant's data carries ``project_id`` with ``ON DELETE CASCADE``:
deleting a project deletes everything of it, in one transaction (the audit log is the
exception: it outlives the project it speaks of). Rows are the platform's own records:
change them through the services (``genai.tenancy``, ``genai.registry``...), which
authorize and audit, except in the package that owns a table (``cache``'s entries,
``rag``'s knowledge bases). :func:`utcnow` is the timestamp every row is written with.

Alembic migrations under ``migrations/versions`` must produce exactly these tables; a test
compares them.
"""

from genai.store.schema._agents import (
    AgentApproval,
    AgentCheckpoint,
    AgentCheckpointWrite,
    AgentRun,
    AgentStep,
    AgentToolCall,
)
from genai.store.schema._apps import PublishedApp
from genai.store.schema._base import Base, utcnow
from genai.store.schema._capabilities import (
    CacheCounter,
    CacheEntry,
    CacheEstimate,
    CacheHit,
    DlpVaultEntry,
    KbAnswer,
    KbDocument,
    KnowledgeBase,
)
from genai.store.schema._core import (
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
from genai.store.schema._evals import EvalResult, EvalSuite
from genai.store.schema._responses import StoredResponse

__all__ = [
    "Adapter",
    "AgentApproval",
    "AgentCheckpoint",
    "AgentCheckpointWrite",
    "AgentRun",
    "AgentStep",
    "AgentToolCall",
    "Alias",
    "AliasEvent",
    "ApiKey",
    "AuditEvent",
    "Base",
    "CacheCounter",
    "CacheEntry",
    "CacheEstimate",
    "CacheHit",
    "Counter",
    "Dataset",
    "Deployment",
    "DlpVaultEntry",
    "EvalResult",
    "EvalRun",
    "EvalSuite",
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
    "PublishedApp",
    "Quota",
    "Run",
    "RunMetric",
    "ShadowResult",
    "StoredResponse",
    "UsageRecord",
    "utcnow",
]
