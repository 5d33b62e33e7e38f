"""The ragas_* metrics without ragas: which python runs the worker, their options, what each
sends for a sample, and the samples they leave unmeasured before asking the worker (the
worker itself runs in tests/integration/test_eval_ragas.py)."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

from eval._judges import gateway_judge
from eval._metric import METRICS, Metric, MetricEnv
from eval._metrics_ragas import NO_CONTEXTS, NO_REFERENCE_CONTEXTS, worker_pids
from eval._metrics_text import NO_REFERENCE
from eval._ragas_proc import PYTHON_ENV, ragas_python
from eval._types import Answer, EvalRow, Message, Sample
from genai.errors import MissingDependencyError, UsageError, ValidationError

GATEWAY = "http://127.0.0.1:9/v1"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> MetricEnv:
    monkeypatch.setenv(PYTHON_ENV, sys.executable)  # never started by these tests
    judge = gateway_judge(gateway=GATEWAY, api_key="gk_secret", model="judge")
    return MetricEnv(judges={"judge": judge}, gateway=GATEWAY, api_key="gk_secret")


def sample(
    *, contexts: tuple[str, ...] = (), reference: str | None = "Paris", refs: tuple[str, ...] = ()
) -> Sample:
    row = EvalRow(
        index=0,
        id="r0",
        messages=(Message(role="user", content="Capital of France?"),),
        reference=reference,
        reference_contexts=refs,
    )
    return Sample(row=row, answer=Answer(output="Paris.", contexts=contexts))


def build(name: str, env: MetricEnv, **options: Any) -> Any:
    metric = METRICS.create(name, env=env, **options)
    assert isinstance(metric, Metric)
    return metric


def test_the_python_is_the_option_then_the_environment_then_this_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(PYTHON_ENV, sys.executable)
    assert ragas_python() == Path(sys.executable)
    with pytest.raises(UsageError, match="does not exist"):
        ragas_python(tmp_path / "nope")
    monkeypatch.delenv(PYTHON_ENV)
    if importlib.util.find_spec("ragas") is not None:
        assert ragas_python() == Path(sys.executable)
        return
    with pytest.raises(MissingDependencyError, match=PYTHON_ENV):
        ragas_python()  # the extra's pins clash: ragas lives in an environment of its own


def test_llm_metrics_send_the_judge_and_the_answers_contexts(env: MetricEnv) -> None:
    metric = build("ragas_faithfulness", env, judge="judge", max_tokens=64)
    payload = metric.payload(sample(contexts=("Paris is the capital.",)))
    assert payload == {
        "metric": "faithfulness",
        "judge": "judge",
        "options": {"max_tokens": 64},
        "fields": {
            "user_input": "Capital of France?",
            "response": "Paris.",
            "retrieved_contexts": ["Paris is the capital."],
        },
    }
    assert metric._worker.gateway == GATEWAY and metric._worker.api_key == "gk_secret"
    relevancy = build("ragas_answer_relevancy", env, judge="judge", embeddings="emb")
    assert relevancy.payload(sample())["embeddings"] == "emb"
    assert relevancy.bounds == (-1.0, 1.0)


def test_the_run_shares_one_worker(env: MetricEnv) -> None:
    one = build("ragas_rouge", env)
    two = build("ragas_context_recall", env, judge="judge")
    assert one._worker is two._worker
    assert build("ragas_bleu", MetricEnv())._worker is not one._worker
    assert one.pid is None and worker_pids() == []  # started on the first sample only


@pytest.mark.parametrize(
    ("name", "options", "field"),
    [
        ("ragas_faithfulness", {"judge": "nobody"}, "judge"),
        ("ragas_faithfulness", {"judge": "judge", "max_tokens": 0}, "max_tokens"),
        ("ragas_answer_relevancy", {"judge": "judge", "embeddings": ""}, "embeddings"),
        ("ragas_nonllm_context_recall", {"threshold": 2}, "threshold"),
        ("ragas_rouge", {"rouge_type": "rouge9"}, "rouge_type"),
    ],
)
def test_bad_options_are_refused(
    env: MetricEnv, name: str, options: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        build(name, env, **options)
    assert caught.value.field == field


def test_an_unknown_option_is_refused(env: MetricEnv) -> None:
    with pytest.raises(TypeError):
        build("ragas_bleu", env, treshold=0.5)


@pytest.mark.parametrize(
    ("name", "options", "given", "reason"),
    [
        ("ragas_faithfulness", {"judge": "judge"}, {}, NO_CONTEXTS),
        ("ragas_context_precision", {"judge": "judge"}, {"reference": None}, NO_REFERENCE),
        ("ragas_context_recall", {"judge": "judge"}, {}, NO_CONTEXTS),
        ("ragas_nonllm_context_precision", {}, {"contexts": ("a",)}, NO_REFERENCE_CONTEXTS),
        ("ragas_nonllm_context_recall", {}, {"refs": ("a",)}, NO_CONTEXTS),
        ("ragas_bleu", {}, {"reference": ""}, NO_REFERENCE),
    ],
)
def test_what_ragas_cannot_score_is_unmeasured_without_asking_it(
    env: MetricEnv, name: str, options: dict[str, Any], given: dict[str, Any], reason: str
) -> None:
    metric = build(name, env, **options)
    value = asyncio.run(metric.score(sample(**given)))
    assert value.value is None and value.reason == reason
    assert metric.pid is None
