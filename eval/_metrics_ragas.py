"""ragas 0.4.3's metrics, scored by a worker process in ragas's own environment.

ragas needs ``instructor``, whose releases pin an openai/jiter/rich that clash with the
project's, so ragas runs in a separate python (``GENAI_RAGAS_PYTHON``, or this one when
ragas is importable here — never one a suite names: a suite is a registry entry any
member may write, and the worker runs with the caller's key): one worker process per
run, shared by the run's ragas metrics, started on the first sample and closed when the
run ends (:meth:`RagasMetric.aclose`).

The LLM metrics ask a judge deployment (``judge:``) through the gateway with the run's
key, as :class:`~eval._metrics_model.LLMJudge` does:

- ``ragas_faithfulness``: the answer's claims supported by the answer's contexts (the
  knowledge bot's cited chunks);
- ``ragas_answer_relevancy``: questions generated from the answer compared with the
  question, by the embeddings of the deployment named with ``embeddings:``;
- ``ragas_context_precision`` / ``ragas_context_recall``: the answer's contexts judged
  against the row's reference answer.

The offline string metrics need no judge: ``ragas_nonllm_context_precision`` and
``ragas_nonllm_context_recall`` compare the answer's contexts with the row's
``reference_contexts`` (string similarity, ``threshold``); ``ragas_rouge`` and
``ragas_bleu`` compare the output with the reference.

A sample ragas cannot score (NaN, a judge's unparsable reply, a crashed worker) is
unmeasured with the reason, never NaN.
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from eval._metrics_text import NO_REFERENCE, unmeasurable
from eval._ragas_proc import RagasWorker, ragas_python
from eval._types import MetricKind, MetricValue, Sample
from genai.errors import ValidationError
from genai.validation import check_metric_name

if TYPE_CHECKING:
    from eval._metric import MetricEnv

__all__ = [
    "RagasAnswerRelevancy",
    "RagasBleu",
    "RagasContextPrecision",
    "RagasContextRecall",
    "RagasFaithfulness",
    "RagasNonLLMContextPrecision",
    "RagasNonLLMContextRecall",
    "RagasRouge",
]

_NO_GATEWAY = "http://127.0.0.1:9/v1"  # the string metrics never call it
_WORKERS: dict[tuple[int, str], RagasWorker] = {}
NO_CONTEXTS = "the answer has no contexts (a knowledge bot's cited chunks)"
NO_REFERENCE_CONTEXTS = "the row has no reference_contexts"


def _forget(key: tuple[int, str]) -> None:
    worker = _WORKERS.pop(key, None)
    if worker is not None:
        worker.kill_now()


def shared_worker(env: MetricEnv | None, python: Path) -> RagasWorker:
    """The run's worker for ``python`` (one per :class:`MetricEnv`, i.e. per run)."""
    if env is None:
        return RagasWorker(python=python, gateway=_NO_GATEWAY, api_key="unused")
    key = (id(env), str(python))
    if key not in _WORKERS:
        _WORKERS[key] = RagasWorker(python=python, gateway=_NO_GATEWAY, api_key="unused")
        weakref.finalize(env, _forget, key)
    return _WORKERS[key]


def worker_pids() -> list[int]:
    """The process ids of the ragas workers running now (for tests and diagnostics)."""
    return sorted(pid for worker in list(_WORKERS.values()) if (pid := worker.pid) is not None)


class RagasMetric:
    """The shared part: options, the worker, and the request for one sample."""

    metric: ClassVar[str]  # the worker's name of it
    default_name: ClassVar[str]
    needs_judge: ClassVar[bool] = False
    kind: MetricKind = "continuous"
    higher_is_better = True
    bounds: tuple[float | None, float | None] = (0.0, 1.0)

    def __init__(
        self,
        *,
        name: str | None = None,
        env: MetricEnv | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        self.name = self.default_name if name is None else check_metric_name(name)
        self.options = dict(options or {})
        self._env = env  # the run's: its worker lives as long as the run's metrics
        self._worker = shared_worker(env, ragas_python())

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    @property
    def pid(self) -> int | None:
        """The worker's process id while it runs."""
        return self._worker.pid

    async def score(self, sample: Sample) -> MetricValue:
        problem = unmeasurable(sample, needs_reference=False) or self.missing(sample)
        if problem is not None:
            return MetricValue.unmeasured(problem)
        response = await self._worker.request(self.payload(sample))
        value = response.get("value")
        if isinstance(value, int | float) and not isinstance(value, bool):
            return MetricValue.of(float(value))
        return MetricValue.unmeasured(str(response.get("reason") or "ragas gave no value"))

    async def aclose(self) -> None:
        """Stop the run's worker (the runner calls this when the run ends)."""
        await self._worker.aclose()

    def payload(self, sample: Sample) -> dict[str, Any]:
        return {"metric": self.metric, "fields": self.fields(sample), "options": self.options}

    def fields(self, sample: Sample) -> dict[str, Any]:
        raise NotImplementedError

    def missing(self, sample: Sample) -> str | None:
        """Why ragas cannot score ``sample`` (a field it needs is empty), or None."""
        return None


class _JudgedMetric(RagasMetric):
    """A ragas metric that asks a judge deployment (``judge:``), through the gateway."""

    def __init__(
        self,
        *,
        judge: str,
        max_tokens: int = 1024,
        name: str | None = None,
        env: MetricEnv | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        from eval._metrics_model import _pick_judge

        _count("max_tokens", max_tokens)
        options = {**(options or {}), "max_tokens": max_tokens}
        super().__init__(name=name, env=env, options=options)
        self.judge = judge
        _pick_judge(judge, env)  # a judge the suite names, or the error listing them
        if env is None or env.gateway is None or env.api_key is None:
            raise ValidationError(
                "the ragas metrics ask their judge through the gateway: run them in an eval "
                "run (eval.run), which knows the gateway and the key",
                field="judge",
            )
        self._worker.gateway, self._worker.api_key = env.gateway, env.api_key

    def payload(self, sample: Sample) -> dict[str, Any]:
        return {**super().payload(sample), "judge": self.judge}


def _contexts(sample: Sample) -> list[str]:
    return list(sample.answer.contexts)


class RagasFaithfulness(_JudgedMetric):
    metric = "faithfulness"
    default_name = "ragas_faithfulness"

    def missing(self, sample: Sample) -> str | None:
        return None if sample.answer.contexts else NO_CONTEXTS

    def fields(self, sample: Sample) -> dict[str, Any]:
        return {
            "user_input": sample.row.prompt,
            "response": sample.output,
            "retrieved_contexts": _contexts(sample),
        }


class RagasAnswerRelevancy(_JudgedMetric):
    metric = "answer_relevancy"
    default_name = "ragas_answer_relevancy"
    bounds = (-1.0, 1.0)  # a mean cosine similarity

    def __init__(
        self,
        *,
        judge: str,
        embeddings: str,
        strictness: int = 3,
        max_tokens: int = 1024,
        name: str | None = None,
        env: MetricEnv | None = None,
    ) -> None:
        if not isinstance(embeddings, str) or not embeddings:
            raise ValidationError(
                "embeddings names the embedding deployment ragas compares questions with, "
                f"not {embeddings!r}",
                field="embeddings",
            )
        _count("strictness", strictness)
        super().__init__(
            judge=judge,
            max_tokens=max_tokens,
            name=name,
            env=env,
            options={"strictness": strictness},
        )
        self.embeddings = embeddings

    def payload(self, sample: Sample) -> dict[str, Any]:
        return {**super().payload(sample), "embeddings": self.embeddings}

    def fields(self, sample: Sample) -> dict[str, Any]:
        return {"user_input": sample.row.prompt, "response": sample.output}


class RagasContextPrecision(_JudgedMetric):
    metric = "context_precision"
    default_name = "ragas_context_precision"

    def missing(self, sample: Sample) -> str | None:
        if not (sample.row.reference or "").strip():
            return NO_REFERENCE
        return None if sample.answer.contexts else NO_CONTEXTS

    def fields(self, sample: Sample) -> dict[str, Any]:
        return {
            "user_input": sample.row.prompt,
            "reference": sample.row.reference,
            "retrieved_contexts": _contexts(sample),
        }


class RagasContextRecall(RagasContextPrecision):
    metric = "context_recall"
    default_name = "ragas_context_recall"


class _NonLLMContexts(RagasMetric):
    def __init__(
        self,
        *,
        threshold: float = 0.5,
        name: str | None = None,
        env: MetricEnv | None = None,
    ) -> None:
        number = isinstance(threshold, int | float) and not isinstance(threshold, bool)
        if not (number and 0.0 <= threshold <= 1.0):
            raise ValidationError(
                f"threshold is a string similarity from 0 to 1, not {threshold!r}",
                field="threshold",
            )
        options = {"threshold": float(threshold)}
        super().__init__(name=name, env=env, options=options)

    def missing(self, sample: Sample) -> str | None:
        if not sample.row.reference_contexts:
            return NO_REFERENCE_CONTEXTS
        return None if sample.answer.contexts else NO_CONTEXTS

    def fields(self, sample: Sample) -> dict[str, Any]:
        return {
            "retrieved_contexts": _contexts(sample),
            "reference_contexts": list(sample.row.reference_contexts),
        }


class RagasNonLLMContextPrecision(_NonLLMContexts):
    metric = "nonllm_context_precision"
    default_name = "ragas_nonllm_context_precision"


class RagasNonLLMContextRecall(_NonLLMContexts):
    metric = "nonllm_context_recall"
    default_name = "ragas_nonllm_context_recall"


class _AgainstReference(RagasMetric):
    def missing(self, sample: Sample) -> str | None:
        return None if (sample.row.reference or "").strip() else NO_REFERENCE

    def fields(self, sample: Sample) -> dict[str, Any]:
        return {"reference": sample.row.reference, "response": sample.output}


class RagasRouge(_AgainstReference):
    metric = "rouge"
    default_name = "ragas_rouge"

    def __init__(
        self,
        *,
        rouge_type: str = "rougeL",
        mode: str = "fmeasure",
        name: str | None = None,
        env: MetricEnv | None = None,
    ) -> None:
        _choice("rouge_type", rouge_type, ("rouge1", "rougeL"))
        _choice("mode", mode, ("fmeasure", "precision", "recall"))
        options = {"rouge_type": rouge_type, "mode": mode}
        super().__init__(name=name, env=env, options=options)


class RagasBleu(_AgainstReference):
    metric = "bleu"
    default_name = "ragas_bleu"


def _choice(field: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValidationError(f"{field} is one of {', '.join(choices)}, not {value!r}", field=field)


def _count(field: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(f"{field} is a whole number, 1 or more, not {value!r}", field=field)
