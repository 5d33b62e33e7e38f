"""The metric protocol, and the plug-in registry metrics are built from.

A metric has a ``name``, a ``kind`` (``binary`` pass/fail or ``continuous``), a direction
(``higher_is_better``) and one coroutine, ``score(sample) -> MetricValue``. A suite names
metrics with options (``{"name": "regex", "pattern": "^yes"}``); :data:`METRICS` builds
them, and a third party adds one with an entry point in the group ``genai.metrics``::

    [project.entry-points."genai.metrics"]
    politeness = "my_package.metrics:Politeness"

Factories are called with the suite's options and ``env=`` (a :class:`MetricEnv`: the
embedder and the judge client a metric may need). A metric may also say which values its
scores can take (``bounds = (0.0, 1.0)``; ``None`` for an open end): confidence intervals
are cut to them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from eval._types import Answer, MetricKind, MetricValue, Sample
from genai.plugins import Registry

if TYPE_CHECKING:
    from genai.models import Embedder

__all__ = ["METRICS", "Judge", "Metric", "MetricEnv"]


@runtime_checkable
class Metric(Protocol):
    """Scores one sample. ``score`` never raises for a bad output: it returns
    :meth:`MetricValue.unmeasured` with the reason (the runner also turns an unexpected
    exception into an unmeasured value, so a plug-in's bug never crashes a run)."""

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> MetricKind: ...

    @property
    def higher_is_better(self) -> bool: ...

    async def score(self, sample: Sample) -> MetricValue: ...


#: Sends chat messages to a judge deployment through the gateway and returns its text;
#: ``response_format`` is passed on (JSON mode, a JSON schema). Raises on failure.
Judge = Callable[[list[dict[str, str]], dict[str, Any] | None], Awaitable[str]]


@dataclass
class MetricEnv:
    """What metrics may need beyond the sample, made once per run."""

    embedder: Callable[[], Embedder] | None = None  # built on first use (the bundled model)
    judges: dict[str, Judge] = field(default_factory=dict)  # by judge deployment name
    baseline: Mapping[str, Answer] = field(default_factory=dict)  # row id -> its answer
    baseline_id: str | None = None  # the eval run those answers come from
    gateway: str | None = None  # the run's gateway (/v1) and key, for metrics that call it
    api_key: str | None = field(default=None, repr=False)


METRICS: Registry[Metric] = Registry(
    "metric",
    group="genai.metrics",
    builtins={
        "exact_match": "eval._metrics_text:ExactMatch",
        "token_f1": "eval._metrics_text:TokenF1",
        "rouge_l": "eval._metrics_text:RougeL",
        "bleu": "eval._metrics_text:Bleu",
        "regex": "eval._metrics_text:Regex",
        "contains": "eval._metrics_text:Contains",
        "label_match": "eval._metrics_labels:LabelMatch",
        "json_valid": "eval._metrics_text:JsonValid",
        "json_schema": "eval._metrics_text:JsonSchema",
        "latency": "eval._metrics_text:Latency",
        "cost": "eval._metrics_text:Cost",
        "tokens": "eval._metrics_text:Tokens",
        "embedding_similarity": "eval._metrics_model:EmbeddingSimilarity",
        "citation_support": "eval._metrics_model:CitationSupport",
        "llm_judge": "eval._metrics_model:LLMJudge",
        "pairwise_judge": "eval._metrics_pairwise:PairwiseJudge",
        "ragas_faithfulness": "eval._metrics_ragas:RagasFaithfulness",
        "ragas_answer_relevancy": "eval._metrics_ragas:RagasAnswerRelevancy",
        "ragas_context_precision": "eval._metrics_ragas:RagasContextPrecision",
        "ragas_context_recall": "eval._metrics_ragas:RagasContextRecall",
        "ragas_nonllm_context_precision": "eval._metrics_ragas:RagasNonLLMContextPrecision",
        "ragas_nonllm_context_recall": "eval._metrics_ragas:RagasNonLLMContextRecall",
        "ragas_rouge": "eval._metrics_ragas:RagasRouge",
        "ragas_bleu": "eval._metrics_ragas:RagasBleu",
    },
)
