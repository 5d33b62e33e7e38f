"""The registry: base models, datasets, runs, adapters, prompt versions, deployments, eval
suites and eval runs; aliases; the lineage graph; the content-addressed artifact store.

Every entry belongs to one project. Versions are immutable; aliases move between them and
every move is recorded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from genai.registry._artifacts import MANIFEST_KIND, ArtifactStore
from genai.registry._catalog import Adapters, Deployments, Prompts
from genai.registry._datasets import Datasets, read_rows
from genai.registry._evals import Evals, Suites
from genai.registry._lineage import Aliases, Lineage
from genai.registry._models import Models
from genai.registry._refs import KINDS, Ref
from genai.registry._runs import ActiveRun, Runs, code_version
from genai.registry._types import (
    AdapterVersion,
    AliasChange,
    DatasetVersion,
    DeploymentRevision,
    EvalResultRecord,
    EvalRunInfo,
    LineageEdgeInfo,
    LineageGraph,
    MetricPoint,
    ModelVersion,
    PromptVersionInfo,
    RunInfo,
    SuiteVersion,
)

if TYPE_CHECKING:
    from genai._context import Context

__all__ = [
    "KINDS",
    "MANIFEST_KIND",
    "ActiveRun",
    "AdapterVersion",
    "Adapters",
    "AliasChange",
    "Aliases",
    "ArtifactStore",
    "DatasetVersion",
    "Datasets",
    "DeploymentRevision",
    "Deployments",
    "EvalResultRecord",
    "EvalRunInfo",
    "Evals",
    "Lineage",
    "LineageEdgeInfo",
    "LineageGraph",
    "MetricPoint",
    "ModelVersion",
    "Models",
    "PromptVersionInfo",
    "Prompts",
    "Ref",
    "Registry",
    "RunInfo",
    "Runs",
    "SuiteVersion",
    "Suites",
    "code_version",
    "read_rows",
]


class Registry:
    """One entry point per kind: ``registry.models.register(...)``, ``registry.lineage(...)``."""

    def __init__(self, ctx: Context) -> None:
        self.models = Models(ctx)
        self.datasets = Datasets(ctx)
        self.runs = Runs(ctx)
        self.adapters = Adapters(ctx)
        self.prompts = Prompts(ctx)
        self.deployments = Deployments(ctx)
        self.suites = Suites(ctx)
        self.evals = Evals(ctx)
        self.aliases = Aliases(ctx)
        self.lineage = Lineage(ctx)
        self._ctx = ctx

    @property
    def artifacts(self) -> ArtifactStore:
        return self._ctx.artifacts
