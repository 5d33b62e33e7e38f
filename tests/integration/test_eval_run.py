"""Eval runs through a real gateway: results kept per row, repeats, the result cache, row
errors, an interrupted run resumed, bad rows, and one project never reaching another's."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import eval as ev
from eval import METRICS, MetricKind, MetricValue, Sample
from genai.errors import BackendError, NotFoundError, UsageError, ValidationError
from genai.gateway import GatewayRequest, Stages, TargetSpec
from genai.store import schema as t

ANSWERS = {
    "capital of France?": "Paris",
    "capital of Italy?": "Rome",
    "capital of Spain?": "Madrid",
    "capital of Peru?": "Lima is the capital",
    "capital of Chile?": "I do not know",
    "capital of Japan?": "Kyoto",
}
REFERENCES = {
    "capital of France?": "Paris",
    "capital of Italy?": "Rome",
    "capital of Spain?": "Madrid",
    "capital of Peru?": "Lima",
    "capital of Chile?": "Santiago",
    "capital of Japan?": "Tokyo",
}


class Oracle:
    """A gateway target stage that answers from a table, counting its calls; questions in
    ``failing`` fail (a backend error the gateway reports as a 502)."""

    name = "oracle"

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.failing: set[str] = set()
        self._lock = threading.Lock()

    async def complete(self, request: GatewayRequest, target: TargetSpec) -> dict[str, Any]:
        question = request.body["messages"][-1]["content"]
        with self._lock:
            self.calls[question] += 1
        if question in self.failing:
            raise BackendError("the oracle is down", backend="oracle", retryable=False)
        text = ANSWERS.get(question, "no idea")
        return {
            "id": "o-1",
            "object": "chat.completion",
            "created": 1,
            "model": "oracle",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": 6,
                "completion_tokens": len(text.split()),
                "total_tokens": 9,
            },
        }

    async def stream(
        self, request: GatewayRequest, target: TargetSpec
    ) -> AsyncIterator[dict[str, Any]]:  # pragma: no cover - evals do not stream
        raise NotImplementedError
        yield {}

    @property
    def total(self) -> int:
        return sum(self.calls.values())


@pytest.fixture
def world(
    platform: Callable[..., Any], settings: Any, gateway_server: Callable[..., Any], tmp_path: Path
) -> Iterator[Any]:
    from _gateway_harness import new_project

    admin = platform()
    project = new_project(admin, "evals")
    project.deploy(
        {
            "targets": [
                {
                    "name": "o",
                    "backend": "oracle",
                    "price": {"input_per_1m": 1.0, "output_per_1m": 2.0},
                }
            ],
            "retries": 0,
        },
        name="qa",
    )
    oracle = Oracle()
    gw = gateway_server(settings, stages=Stages(targets={"oracle": oracle}))
    data = tmp_path / "capitals.jsonl"
    data.write_text(
        "".join(
            json.dumps({"id": f"q{i}", "question": q, "reference": REFERENCES[q], "lang": "en"})
            + "\n"
            for i, q in enumerate(ANSWERS)
        )
    )
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        "name: capitals\n"
        "dataset: capitals.jsonl\n"
        "repeats: 2\n"
        "concurrency: 3\n"
        "max_retries: 0\n"
        "metrics: [exact_match, token_f1]\n"
        "thresholds:\n"
        "  - {metric: token_f1, min: 0.2}\n"
    )

    class World:
        pass

    w = World()
    w.admin, w.project, w.oracle, w.gw, w.suite = admin, project, oracle, gw, suite  # type: ignore[attr-defined]
    w.run = lambda **kw: ev.run(  # type: ignore[attr-defined]
        admin,
        project.name,
        kw.pop("suite", suite),
        target=kw.pop("target", "qa"),
        gateway=kw.pop("gateway", gw.v1),
        api_key=kw.pop("api_key", project.key),
        **kw,
    )
    yield w


def test_a_run_answers_every_row_and_repeat_through_the_gateway_and_keeps_everything(
    world: Any,
) -> None:
    job = world.run()

    assert world.oracle.total == 12  # 6 rows × 2 repeats: repeats are separate calls
    assert set(world.oracle.calls.values()) == {2}
    assert job.eval.status == "finished"
    assert len(job.results) == 12
    em = job.summary.metrics["exact_match"]
    assert em.estimate.mean == pytest.approx(3 / 6)  # Paris, Rome, Madrid
    assert em.estimate.n == 6 and em.estimate.low is not None
    assert em.estimate.low <= em.estimate.mean <= em.estimate.high
    f1 = job.summary.metrics["token_f1"]
    assert f1.per_row["q3"] == pytest.approx(0.5)  # "lima is capital" vs "lima", SQuAD F1
    # latency, cost and tokens are always measured; cost comes from the ledger's price
    assert job.summary.metrics["cost"].estimate.mean == pytest.approx(
        sum((6 * 1.0 + len(a.split()) * 2.0) / 1e6 for a in ANSWERS.values()) / 6
    )
    assert job.summary.metrics["latency"].estimate.n == 6
    # the usage ledger has every call (an eval run pays like any caller)
    assert world.gw.gateway.ledger.flush(timeout_s=20)  # rows are written in the background
    assert world.project.count() == 12
    # the registry keeps the run, its results and its lineage
    info = world.admin.registry.evals.get("evals", job.eval.id)
    assert info.metrics["exact_match"]["mean"] == pytest.approx(0.5)
    assert {ref.split("@")[0] for ref in info.inputs} == {
        "suite:capitals",
        "dataset:eval-capitals",
        "deployment:qa",
    }
    stored = world.admin.registry.evals.results("evals", job.eval.id)
    assert [(r.row_index, r.repeat) for r in stored] == [(i, k) for i in range(6) for k in (0, 1)]
    assert stored[0].answer["output"] == "Paris"
    assert stored[0].scores["exact_match"]["value"] == {"value": 1.0, "reason": None}


def test_an_identical_rerun_is_answered_from_the_eval_cache_with_identical_scores(
    world: Any,
) -> None:
    first = world.run()
    again = world.run()

    assert world.oracle.total == 12  # nothing asked upstream the second time
    assert again.eval.id != first.eval.id
    assert all(r.answer.cached for r in again.results)
    for name, m in first.summary.metrics.items():  # latency too: the answer's own, kept
        assert again.summary.metrics[name].per_row == m.per_row
        assert again.summary.metrics[name].estimate == m.estimate

    fresh = world.run(fresh=True)
    assert world.oracle.total == 24
    assert not any(r.answer.cached for r in fresh.results)


def test_a_rerun_wholly_from_the_eval_cache_does_not_need_the_gateway(world: Any) -> None:
    from _servers import closed_port_url

    first = world.run()
    again = world.run(gateway=closed_port_url())  # nothing listens: nothing is asked

    assert again.eval.status == "finished" and all(r.answer.cached for r in again.results)
    assert world.oracle.total == 12
    stored = world.admin.registry.evals.results("evals", again.eval.id)
    assert [(r.row_index, r.repeat) for r in stored] == [(i, k) for i in range(6) for k in (0, 1)]
    assert again.summary.metrics["token_f1"].estimate == first.summary.metrics["token_f1"].estimate


def test_the_eval_cache_reuses_the_newest_answer_that_did_not_fail(world: Any) -> None:
    world.run()
    world.oracle.failing = {"capital of Spain?"}
    world.run(fresh=True)  # newer, but failed for one row: that row's older answer is reused
    world.oracle.failing = set()

    job = world.run()

    assert world.oracle.total == 12 + 12
    assert all(r.answer.cached and r.answer.error is None for r in job.results)


def test_a_batch_of_results_inserts_new_rows_and_replaces_written_ones(world: Any) -> None:
    from genai.registry import EvalResultRecord

    evals = world.admin.registry.evals
    run = evals.record("evals", "batch", metrics={}, status="running")

    def rec(i: int, k: int, out: str) -> EvalResultRecord:
        return EvalResultRecord(
            row_index=i, repeat=k, cache_key=f"key-{i}-{k}", answer={"output": out}, scores={}
        )

    evals.add_results("evals", run.id, [rec(0, 0, "a"), rec(1, 0, "b")])
    evals.add_results("evals", run.id, [rec(1, 0, "b2"), rec(2, 1, "c"), rec(2, 1, "c2")])

    stored = evals.results("evals", run.id)
    assert [(r.row_index, r.repeat, r.answer["output"]) for r in stored] == [
        (0, 0, "a"),
        (1, 0, "b2"),
        (2, 1, "c2"),
    ]
    assert set(evals.cached("evals", ["key-1-0", "key-9-9"])) == {"key-1-0"}


def test_more_repeats_ask_only_for_the_new_repeats(world: Any) -> None:
    world.run()
    job = world.run(repeats=3)

    assert world.oracle.total == 12 + 6  # repeat 2 of each row is new; 0 and 1 are reused
    assert job.summary.repeats == 3
    assert sum(not r.answer.cached for r in job.results) == 6


def test_rows_that_fail_are_counted_and_the_run_completes(world: Any) -> None:
    world.oracle.failing = {"capital of Spain?", "capital of Japan?"}

    job = world.run()

    assert job.eval.status == "finished"
    assert job.summary.errors == 4  # 2 rows × 2 repeats
    em = job.summary.metrics["exact_match"]
    assert em.estimate.n == 4 and em.estimate.unmeasured == 4
    assert em.per_row["q2"] is None
    assert any(why.startswith("the target failed") for why in em.reasons)
    failed = [r for r in job.results if r.answer.error]
    assert all("HTTP 502" in (r.answer.error or "") for r in failed)
    # failed answers are never reused: a re-run asks for them again
    world.oracle.failing = set()
    world.run()
    assert world.oracle.calls["capital of Spain?"] == 4


class _Interrupt:
    """A metric plug-in that stops the run at its ``at``-th sample as a cancelled CI job
    would: SIGTERM to this process."""

    name = "interrupt"
    kind: MetricKind = "binary"
    higher_is_better = True

    def __init__(self, *, at: int, env: Any = None) -> None:
        self.at, self.seen = at, 0

    async def score(self, sample: Sample) -> MetricValue:
        self.seen += 1
        if self.seen == self.at:
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.sleep(5)  # cancelled before it ends
        return MetricValue.of(1.0)


def test_an_interrupted_run_resumes_without_redoing_finished_rows(
    world: Any, tmp_path: Path
) -> None:
    METRICS.register("interrupt", _Interrupt)
    try:
        suite = tmp_path / "suite2.yaml"
        suite.write_text(
            world.suite.read_text()
            .replace(
                "metrics: [exact_match, token_f1]",
                "concurrency: 1\nmetrics: [exact_match, token_f1, {name: interrupt, at: 8}]",
            )
            .replace("concurrency: 3\n", "")
        )
        with pytest.raises(KeyboardInterrupt):
            world.run(suite=suite)
        runs = world.admin.registry.evals.list("evals", suite="capitals")
        assert runs[0].status == "interrupted"
        kept = world.admin.registry.evals.results("evals", runs[0].id)
        assert 0 < len(kept) < 12
        asked = world.oracle.total

        job = ev.resume(
            world.admin, "evals", runs[0].id, gateway=world.gw.v1, api_key=world.project.key
        )
    finally:
        METRICS.unregister("interrupt")

    assert job.eval.id == runs[0].id and job.eval.status == "finished"
    assert len(job.results) == 12
    assert world.oracle.total - asked == 12 - len(kept)  # only what was missing
    assert job.summary.metrics["exact_match"].estimate.mean == pytest.approx(0.5)


def test_rows_missing_fields_are_named_with_their_row_numbers(world: Any, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"question": "capital of France?"}\n{"reference": "x"}\n'
        '{"messages": "hi"}\n{"question": 3}\n'
    )
    suite = tmp_path / "bad.yaml"
    suite.write_text("name: bad\ndataset: bad.jsonl\nmetrics: [exact_match]\n")

    with pytest.raises(ValidationError) as caught:
        world.run(suite=suite)

    message = str(caught.value)
    assert "3 of 4 rows" in message
    assert "row 2: has neither 'messages' nor 'question'" in message
    assert "row 3: 'messages' is not a non-empty list" in message
    assert "row 4: 'question' is not text" in message
    assert world.oracle.total == 0


def test_a_suite_with_a_bad_metric_or_threshold_is_refused_before_any_call(
    world: Any, tmp_path: Path
) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: s\ndataset: x.jsonl\nmetrics: [token_f1]\nthresholds: [{metric: bleu, min: 1}]\n"
    )
    with pytest.raises(ValidationError, match="threshold on 'bleu', which is not among"):
        world.run(suite=suite)
    suite.write_text(
        world.suite.read_text().replace("[exact_match, token_f1]", "[exact_match, no_such_metric]")
    )
    with pytest.raises(UsageError, match="no_such_metric"):
        world.run(suite=suite)
    assert world.oracle.total == 0


def test_one_project_never_reaches_another(world: Any) -> None:
    from _gateway_harness import new_project

    other = new_project(world.admin, "other")
    other.deploy({"targets": [{"name": "o", "backend": "oracle"}]}, name="secret-bot")
    job = world.run()

    # a key of another project is refused before anything is asked or written
    with pytest.raises(UsageError, match="not a key of project 'evals'"):
        world.run(api_key=other.key)
    # a deployment of another project is not found, as a missing one is not
    with pytest.raises(NotFoundError) as caught:
        world.run(target="secret-bot")
    assert "secret-bot" in str(caught.value)
    # another project cannot read, compare with or resume this project's runs
    with pytest.raises(NotFoundError):
        ev.load_run(world.admin, "other", job.eval.id)
    with pytest.raises(NotFoundError):
        world.admin.registry.evals.results("other", job.eval.id)
    with pytest.raises(NotFoundError):
        ev.resume(world.admin, "other", job.eval.id, gateway=world.gw.v1, api_key=other.key)
    assert world.oracle.total == 12
    with world.admin.store.session() as s:
        assert s.query(t.EvalResult).filter(t.EvalResult.project_id == other.id).count() == 0


def test_a_stored_run_reads_back_with_the_same_summary_and_gates(world: Any) -> None:
    job = world.run()

    summary, results = ev.load_run(world.admin, "evals", job.eval.id)

    assert len(results) == 12
    for name, m in job.summary.metrics.items():
        assert summary.metrics[name].estimate == m.estimate
    suite = ev.suite_of(world.admin, "evals", job.eval)
    assert [th.metric for th in suite.thresholds] == ["token_f1"]
    f1 = summary.metrics["token_f1"].estimate  # mean 0.583, 6 rows: a wide interval
    assert f1.low is not None and f1.high is not None and f1.low < 0.5 < f1.mean  # type: ignore[operator]
    outcomes = {
        bound: ev.gate([ev.Threshold(metric="token_f1", min=bound)], summary).checks[0].outcome
        for bound in (f1.low - 0.01, 0.5, 0.9)
    }
    assert outcomes == {f1.low - 0.01: "pass", 0.5: "inconclusive", 0.9: "fail"}


def test_a_projects_own_tests_assert_on_an_eval_with_the_pytest_plugin(
    world: Any, settings: Any, tmp_path: Path
) -> None:
    lenient, strict = tmp_path / "lenient.yaml", tmp_path / "strict.yaml"
    lenient.write_text(world.suite.read_text().replace("min: 0.2", "min: 0.0"))
    strict.write_text(world.suite.read_text().replace("min: 0.2", "min: 0.99"))
    tests = tmp_path / "project_tests"
    tests.mkdir()
    (tests / "test_bot.py").write_text(
        "def test_the_bot_passes(genai_eval):\n"
        f"    job = genai_eval.run({str(lenient)!r}, target='qa')\n"
        "    genai_eval.assert_passes(job)\n\n"
        "def test_the_bot_is_excellent(genai_eval):\n"
        f"    job = genai_eval.run({str(strict)!r}, target='qa')\n"
        "    genai_eval.assert_passes(job)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENAI_")} | {
        "GENAI_HOME": str(settings.home),
        "GENAI_DATABASE_URL": settings.resolved_database_url,
        "GENAI_USER": "admin",
        "GENAI_PROJECT": "evals",
        "GENAI_API_KEY": world.project.key,
        "GENAI_GATEWAY_URL": world.gw.v1,
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "eval.pytest_plugin",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
            "-p",
            "no:kmock",  # our dev environment's kmock plugin needs pytest-asyncio
            str(tests),
        ],
        cwd=tests,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )

    assert "1 failed, 1 passed" in result.stdout, result.stdout[-3000:] + result.stderr[-2000:]
    assert "did not pass its gate (fail)" in result.stdout
    assert "fail: token_f1 min 0.99" in result.stdout
    assert world.oracle.total == 12  # the second suite's answers came from the eval cache


def test_a_resume_calls_the_resumers_gateway_not_the_url_the_run_was_started_with(
    world: Any,
) -> None:
    from _servers import closed_port_url

    elsewhere = closed_port_url()  # a URL a member put in a run (nothing listens there)
    with pytest.raises(UsageError, match="cannot reach the gateway"):
        world.run(gateway=elsewhere)
    (failed,) = world.admin.registry.evals.list("evals", suite="capitals")
    assert failed.status == "failed" and failed.config["gateway"] == elsewhere

    job = ev.resume(world.admin, "evals", failed.id, gateway=world.gw.v1, api_key=world.project.key)

    assert job.eval.status == "finished" and world.oracle.total == 12
