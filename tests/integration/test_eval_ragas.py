"""The ragas_* metrics in eval runs through a real gateway, ragas 0.4.3 running in the
clients environment (GENAI_RAGAS_PYTHON): a tiny random judge (a real ``genai serve``, its
JSON nonsense and cut off by max_tokens) leaves the LLM metrics unmeasured with reasons (or
a bounded score), never NaN; the offline string metrics give
what ragas gives when called directly on the same strings; a worker killed mid-run leaves
the rows it was scoring unmeasured with the reason, and the next rows are scored by a new
worker (a NaN from ragas becomes unmeasured too)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _clients import clients_python, offline_env

import eval as ev
from eval._metrics_ragas import NO_REFERENCE_CONTEXTS, worker_pids
from eval._ragas_proc import PYTHON_ENV
from genai.gateway import GatewayRequest, Stages, TargetSpec

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ROWS: list[dict[str, Any]] = [
    {
        "id": "desk",
        "question": "Where is the help desk?",
        "answer": "The help desk is on the second floor. [1]",
        "cited": ["The help desk is on the second floor and opens at 9 am.", "Parking is below."],
        "reference": "On the second floor.",
        "reference_contexts": ["The help desk is on the second floor and opens at 9 am."],
    },
    {
        "id": "account",
        "question": "How do I close an account?",
        "answer": "Ask the knowledge bot. [1]",
        "cited": ["Questions about accounts are answered by a knowledge bot."],
        "reference": "Ask the knowledge bot.",
        "reference_contexts": ["Accounts are closed by the knowledge bot.", "It takes a day."],
    },
    {
        "id": "hours",
        "question": "When does the desk open?",
        "answer": "It opens at nine. [1]",
        "cited": ["The desk opens at 9 am."],
        "reference": "At nine in the morning.",
        "reference_contexts": [],
    },
]
BY_QUESTION = {row["question"]: row for row in ROWS}
LLM_METRICS = (
    "ragas_faithfulness",
    "ragas_answer_relevancy",
    "ragas_context_precision",
    "ragas_context_recall",
)

# ragas called directly, in the clients environment, on the rows' strings.
EXPECTED = """
import asyncio, json, sys, warnings
from ragas import SingleTurnSample
from ragas.metrics.collections import BleuScore, RougeScore
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from ragas.metrics import NonLLMContextPrecisionWithReference, NonLLMContextRecall

async def main(rows):
    out = []
    for r in rows:
        pair = {"reference": r["reference"], "response": r["answer"]}
        one = {
            "rouge": (await RougeScore().ascore(**pair)).value,
            "bleu": (await BleuScore().ascore(**pair)).value,
        }
        if r["reference_contexts"]:
            s = SingleTurnSample(
                retrieved_contexts=r["cited"], reference_contexts=r["reference_contexts"]
            )
            one["precision"] = await NonLLMContextPrecisionWithReference().single_turn_ascore(s)
            one["recall"] = await NonLLMContextRecall().single_turn_ascore(s)
        out.append(one)
    return out

print(json.dumps(asyncio.run(main(json.load(sys.stdin)))))
"""


def _completion(text: str, citations: list[str] | None = None) -> dict[str, Any]:
    reply: dict[str, Any] = {
        "id": "c-1",
        "object": "chat.completion",
        "created": 1,
        "model": "stage",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
    }
    if citations is not None:
        reply["citations"] = [
            {"number": i, "text": t, "source": f"doc{i}"} for i, t in enumerate(citations, 1)
        ]
    return reply


class CitedBot:
    """A knowledge bot's shape: each answer cites its chunks (the answer's contexts)."""

    name = "cited"

    async def complete(self, request: GatewayRequest, target: TargetSpec) -> dict[str, Any]:
        row = BY_QUESTION[request.body["messages"][-1]["content"]]
        return _completion(str(row["answer"]), list(row["cited"]))

    async def stream(
        self, request: GatewayRequest, target: TargetSpec
    ) -> AsyncIterator[dict[str, Any]]:  # pragma: no cover - evals do not stream
        raise NotImplementedError
        yield {}


class KillingJudge:
    """A judge that kills the running ragas worker on its first call (the request in flight
    dies with it), then answers "no statements" (ragas's faithfulness is NaN for that)."""

    name = "killer"

    def __init__(self) -> None:
        self.killed: list[int] = []
        self.seen: set[int] = set()
        self._lock = threading.Lock()

    async def complete(self, request: GatewayRequest, target: TargetSpec) -> dict[str, Any]:
        pids = worker_pids()
        with self._lock:
            if not self.killed:
                for pid in pids:
                    os.kill(pid, signal.SIGKILL)
                self.killed += pids
            else:
                self.seen.update(pids)
        return _completion(json.dumps({"statements": []}))

    async def stream(
        self, request: GatewayRequest, target: TargetSpec
    ) -> AsyncIterator[dict[str, Any]]:  # pragma: no cover - judges do not stream
        raise NotImplementedError
        yield {}


@pytest.fixture(scope="module")
def ragas_python() -> Path:
    return clients_python("ragas", "instructor", "openai", "rapidfuzz")


@pytest.fixture(scope="module")
def expected(
    ragas_python: Path, tmp_path_factory: pytest.TempPathFactory
) -> list[dict[str, float]]:
    home = tmp_path_factory.mktemp("ragas-direct")
    done = subprocess.run(
        [str(ragas_python), "-c", EXPECTED],
        input=json.dumps(ROWS),
        env=offline_env(home),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out: list[dict[str, float]] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


@pytest.fixture(scope="module")
def judge_server(
    ragas_python: Path, tmp_path_factory: pytest.TempPathFactory, run_server: Any
) -> Iterator[Any]:
    """``genai serve`` of a tiny random model with room for ragas's prompts (their first
    tries are up to ~5,500 of its tokens; ``model_server``'s 2,048 would refuse them)."""
    from genai.testing import tiny_model

    model = tiny_model(tmp_path_factory.mktemp("ragas") / "judge", context_window=8192)
    with run_server(model) as server:
        yield server


@pytest.fixture
def world(
    platform: Callable[..., Any],
    settings: Any,
    gateway_server: Callable[..., Any],
    judge_server: Any,
    ragas_python: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Any]:
    from _gateway_harness import new_project

    monkeypatch.setenv(PYTHON_ENV, str(ragas_python))
    admin = platform()
    project = new_project(admin, "ragas")
    project.deploy({"targets": [{"name": "b", "backend": "cited"}], "retries": 0}, name="bot")
    project.deploy({"targets": [{"name": "k", "backend": "killer"}], "retries": 0}, name="killer")
    project.deploy(
        {"targets": [{"name": "t", "url": judge_server.v1, "model": "tiny-llama"}], "retries": 0},
        name="tiny-judge",
    )
    killer = KillingJudge()
    gw = gateway_server(settings, stages=Stages(targets={"cited": CitedBot(), "killer": killer}))

    def run(name: str, metrics: list[Any], concurrency: int = 2, rows: int = 3) -> ev.EvalJob:
        data = tmp_path / f"{name}.jsonl"
        data.write_text(
            "".join(
                json.dumps({k: r[k] for k in ("id", "question", "reference", "reference_contexts")})
                + "\n"
                for r in ROWS[:rows]
            )
        )
        suite = ev.Suite(
            name=name, dataset=str(data), max_retries=0, concurrency=concurrency, metrics=metrics
        )
        return ev.run(admin, "ragas", suite, target="bot", gateway=gw.v1, api_key=project.key)

    yield run, killer


def _assert_score_or_reason(job: ev.EvalJob, name: str, low: float) -> None:
    for result in job.results:
        value = result.scores[name]
        if value.value is None:  # ragas's own failure (the judge's nonsense), not the worker's
            assert (value.reason or "").startswith("ragas "), (name, value.reason)
        else:
            assert math.isfinite(value.value) and low <= value.value <= 1.0, (name, value)


def test_ragas_metrics_through_the_gateway_are_scores_or_reasons_and_match_ragas(
    world: Any, expected: list[dict[str, float]]
) -> None:
    run, _ = world
    judged = {"judge": "tiny-judge", "max_tokens": 16}
    offline = [
        "ragas_nonllm_context_precision",
        "ragas_nonllm_context_recall",
        "ragas_rouge",
        "ragas_bleu",
    ]
    llm = run(  # the judge's rows are few: ragas's prompts are long for a CPU model
        "ragas-llm",
        [
            {"name": "ragas_faithfulness", **judged},
            {"name": "ragas_answer_relevancy", "embeddings": "tiny-judge", **judged},
            {"name": "ragas_context_precision", **judged},
            {"name": "ragas_context_recall", **judged},
            *offline,
        ],
        rows=1,
    )
    job = run("ragas-offline", offline)

    assert llm.eval.status == "finished" and llm.summary.errors == 0
    for name in LLM_METRICS:  # a random judge: unmeasured with reasons, or a bounded score
        _assert_score_or_reason(llm, name, -1.0 if name == "ragas_answer_relevancy" else 0.0)
        estimate = llm.summary.metrics[name].estimate
        assert estimate.n + estimate.unmeasured == 1
        for number in (estimate.mean, estimate.low, estimate.high):
            assert number is None or math.isfinite(number)
    assert job.eval.status == "finished" and job.summary.errors == 0
    for result in [*job.results, *llm.results]:
        want = expected[[r["id"] for r in ROWS].index(result.row.id)]
        scores = result.scores
        assert scores["ragas_rouge"].value == pytest.approx(want["rouge"])
        assert scores["ragas_bleu"].value == pytest.approx(want["bleu"])
        if "precision" in want:
            assert scores["ragas_nonllm_context_precision"].value == pytest.approx(
                want["precision"]
            )
            assert scores["ragas_nonllm_context_recall"].value == pytest.approx(want["recall"])
        else:
            assert scores["ragas_nonllm_context_recall"].reason == NO_REFERENCE_CONTEXTS
    assert worker_pids() == []  # the run closed its worker


def test_a_worker_killed_mid_run_leaves_its_rows_unmeasured_then_a_new_one_scores(
    world: Any, expected: list[dict[str, float]]
) -> None:
    run, killer = world
    job = run(
        "ragas-crash",
        [{"name": "ragas_faithfulness", "judge": "killer", "max_tokens": 16}, "ragas_bleu"],
        concurrency=1,
    )

    assert job.eval.status == "finished"
    assert len(killer.killed) == 1 and killer.seen and not killer.seen & set(killer.killed)
    first, *rest = job.results
    faithfulness = first.scores["ragas_faithfulness"]
    assert faithfulness.value is None and faithfulness.reason
    assert faithfulness.reason.startswith("the ragas worker ended"), faithfulness.reason
    bleu = first.scores["ragas_bleu"]  # scored beside it: done before the kill, or killed
    assert bleu.value == pytest.approx(expected[0]["bleu"]) or (bleu.reason or "").startswith(
        "the ragas worker ended"
    )
    for result in rest:  # a new worker: ragas's NaN (no statements) is a reason, not a NaN
        reason = result.scores["ragas_faithfulness"].reason or ""
        assert reason.startswith("ragas returned nan"), reason
        want = expected[[r["id"] for r in ROWS].index(result.row.id)]
        assert result.scores["ragas_bleu"].value == pytest.approx(want["bleu"])
    assert job.summary.metrics["ragas_faithfulness"].estimate.unmeasured == len(ROWS)
    assert worker_pids() == []
