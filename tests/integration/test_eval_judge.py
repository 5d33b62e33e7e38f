"""LLM judges through the gateway: a judge that answers random text (a tiny random model)
never crashes a run and never yields NaN; a judge that hangs leaves its rows unmeasured,
with the reason; judged values are kept and reused by an identical re-run."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import eval as ev
from genai.errors import ValidationError
from genai.testing import FakeOpenAIServer, running_server

RUBRIC = "Question: {question}\nAnswer: {answer}\nReference: {reference}\nScore 1 to 5."


@pytest.fixture
def world(
    platform: Callable[..., Any],
    settings: Any,
    gateway_server: Callable[..., Any],
    model_server: Any,
    tmp_path: Path,
) -> Iterator[Any]:
    from _gateway_harness import new_project

    admin = platform()
    project = new_project(admin, "judged")
    answers = FakeOpenAIServer(base_model="answers", reply="Paris is the capital of France")
    hanging = FakeOpenAIServer(base_model="slow")
    hanging.mode, hanging.hang_s = "hang", 5.0
    biased = FakeOpenAIServer(
        base_model="biased", max_model_len=4096, reply='{"winner": "A", "reason": "first"}'
    )
    with (
        running_server(answers.app) as answers_url,
        running_server(hanging.app) as slow_url,
        running_server(biased.app) as biased_url,
    ):
        for name, url, model in (
            ("bot", answers_url + "/v1", "answers"),
            ("tiny-judge", model_server.v1, "tiny-llama"),
            ("slow-judge", slow_url + "/v1", "slow"),
            ("biased-judge", biased_url + "/v1", "biased"),
        ):
            project.deploy(
                {"targets": [{"name": "t", "url": url, "model": model}], "retries": 0}, name=name
            )
        gw = gateway_server(settings)
        data = tmp_path / "rows.jsonl"
        data.write_text(
            "".join(
                json.dumps(
                    {"question": f"What is the capital of France? ({i})", "reference": "Paris"}
                )
                + "\n"
                for i in range(6)
            )
        )

        def run(judge: str, baseline: str | None = None, **options: Any) -> ev.EvalJob:
            metric = options.pop("metric", "llm_judge")
            suite = ev.Suite(
                name=f"judged-by-{judge}",
                dataset=str(data),
                judge_timeout_s=options.pop("judge_timeout_s", None),
                max_retries=0,
                params={"max_tokens": 24},
                metrics=[
                    {"name": metric, "judge": judge, **options}
                    | ({"rubric": RUBRIC} if metric == "llm_judge" else {}),
                    "token_f1",
                ],
            )
            return ev.run(
                admin,
                "judged",
                suite,
                target="bot",
                gateway=gw.v1,
                api_key=project.key,
                baseline=baseline,
            )

        yield run


def test_a_judge_answering_random_text_never_crashes_a_run_nor_yields_nan(world: Any) -> None:
    run = world

    job = run("tiny-judge", retries=1)

    assert job.eval.status == "finished" and job.summary.errors == 0
    judged = job.summary.metrics["llm_judge"]
    values = [r.scores["llm_judge"] for r in job.results]
    assert len(values) == 6
    for value in values:
        if value.value is not None:
            assert math.isfinite(value.value) and 0.0 <= value.value <= 1.0
        else:
            assert value.reason and value.reason.startswith("the judge")
    assert judged.estimate.n + judged.estimate.unmeasured == 6
    for field in ("mean", "low", "high"):
        number = getattr(judged.estimate, field)
        assert number is None or math.isfinite(number)
    # the other metrics are unaffected by the judge's troubles
    assert job.summary.metrics["token_f1"].estimate.n == 6


def test_a_hanging_judge_leaves_its_rows_unmeasured_with_the_reason(world: Any) -> None:
    run = world

    job = run("slow-judge", retries=0, judge_timeout_s=0.5)

    judged = job.summary.metrics["llm_judge"]
    assert judged.estimate.n == 0 and judged.estimate.mean is None
    assert judged.estimate.unmeasured == 6
    assert all("judge failed" in why for why in judged.reasons), judged.reasons
    assert job.summary.metrics["token_f1"].estimate.mean == pytest.approx(
        2 / 6
    )  # "paris is capital of france"


def test_judged_values_are_reused_by_an_identical_rerun(world: Any) -> None:
    run = world
    first = run("tiny-judge", retries=0)
    again = run("tiny-judge", retries=0)

    assert all(r.answer.cached for r in again.results)
    assert again.summary.metrics["llm_judge"].per_row == first.summary.metrics["llm_judge"].per_row


def test_a_pairwise_judge_compares_with_the_baseline_and_cancels_position_bias(
    world: Any,
) -> None:
    run = world
    first = run("tiny-judge", retries=0)  # the baseline: its answers, whatever its scores

    both_ways = run("biased-judge", baseline=first.eval.id, metric="pairwise_judge")
    one_way = run("biased-judge", baseline=first.eval.id, metric="pairwise_judge", swap=False)

    # the judge always prefers the first answer it is shown: asked both ways, that is a tie
    assert set(both_ways.summary.metrics["pairwise_judge"].per_row.values()) == {0.5}
    assert set(one_way.summary.metrics["pairwise_judge"].per_row.values()) == {1.0}
    assert both_ways.eval.config["baseline"] == first.eval.id


def test_a_pairwise_judge_without_a_baseline_is_refused_before_any_call(world: Any) -> None:
    with pytest.raises(ValidationError, match="compares with a baseline run"):
        world("biased-judge", metric="pairwise_judge")
