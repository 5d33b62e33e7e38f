"""``genai eval lm-eval``: lm-evaluation-harness against a deployment, through the gateway.

The tiny local multiple-choice task of tests/data/lm_eval (a JSON-lines file, no hub) is
scored by ``genai eval lm-eval`` (a real process, as a user runs it) on a deployment of a
real gateway whose target is ``genai serve`` of the tiny model, and by lm-eval's own
``--model hf`` on the same model (started once for the module, beside the tests): the
accuracy, and every document's, must be the same. The run is kept as an eval run whose
lineage reaches the deployment revision, each request is in the project's usage ledger,
and a key of another project is refused before lm_eval starts.

lm-eval lives in the clients environment (tests/integration/_clients.py): missing, these
tests skip on a developer's machine and fail under ``CI=true``.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from _clients import (
    LM_EVAL_TASK,
    LM_EVAL_TASK_FILES,
    LmEvalRun,
    clients_python,
    hf_lm_eval,
)
from _clocks import wait_until
from _gateway_harness import GENAI, new_project

import eval as ev
from genai.errors import BackendError, UsageError

pytestmark = [pytest.mark.slow, pytest.mark.timeout(540), pytest.mark.sqlite_only]

REQUESTS = 15  # 59 (question, choice) log-likelihoods, 4 prompts to a request
CLI_TIMEOUT_S = 420


@pytest.fixture(scope="module")
def lm_eval_python() -> Path:
    return clients_python("lm_eval", "transformers", "torch")


@pytest.fixture(scope="module")
def hf_run(
    lm_eval_python: Path, tiny: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LmEvalRun]:
    """lm-eval's own scoring of the tiny model, started once, before the served runs."""
    run = hf_lm_eval(lm_eval_python, tiny.model, tmp_path_factory.mktemp("lm-eval-hf"))
    yield run
    run.stop()


@pytest.fixture(scope="module")
def served(lm_eval_python: Path, tiny: Any, run_server: Callable[..., Any]) -> Iterator[Any]:
    with run_server(tiny.model) as server:
        yield server


@pytest.fixture
def world(
    hf_run: LmEvalRun,
    served: Any,
    platform: Callable[..., Any],
    settings: Any,
    gateway_server: Callable[..., Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> SimpleNamespace:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # lm-eval's datasets cache
    admin = platform()
    project = new_project(admin, "bench")
    target = {
        "name": "serve",
        "url": served.v1,
        "model": "tiny-llama",
        "price": {"input_per_1m": 1.0, "output_per_1m": 2.0},
    }
    project.deploy({"targets": [target], "retries": 0}, name="llm")
    gw = gateway_server(settings)
    return SimpleNamespace(admin=admin, project=project, gw=gw, settings=settings)


def _cli(world: SimpleNamespace, python: Path, tiny: Any, *args: str) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENAI_")}
    env |= {
        "GENAI_HOME": str(world.settings.home),
        "GENAI_DATABASE_URL": world.settings.resolved_database_url,
        "GENAI_USER": "admin",
        "GENAI_LM_EVAL_PYTHON": str(python),
        "GENAI_GATEWAY_URL": world.gw.v1,
        "GENAI_API_KEY": world.project.key,
    }
    command = [GENAI, "eval", "lm-eval", *args, "-p", "bench", "--tokenizer", str(tiny.model)]
    done = subprocess.run(
        [*command, "--json"], env=env, capture_output=True, text=True, timeout=CLI_TIMEOUT_S
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(done.stdout)


def _hf_choice(hf_run: LmEvalRun) -> dict[int, str]:
    """The choice lm-eval's hf run gave the highest log-likelihood, per question."""
    lines = (LM_EVAL_TASK_FILES / "tiny_mc.jsonl").read_text().splitlines()
    docs = [json.loads(line) for line in lines]
    out = {}
    for doc_id, choices in hf_run.scores().choices.items():
        best = max(range(len(choices)), key=lambda i: choices[i][0])
        out[doc_id] = docs[doc_id]["choices"][best]
    return out


def test_genai_eval_lm_eval_through_the_gateway_scores_as_lm_evals_own_hf_model(
    world: SimpleNamespace, hf_run: LmEvalRun, lm_eval_python: Path, tiny: Any
) -> None:
    out = _cli(
        world,
        lm_eval_python,
        tiny,
        LM_EVAL_TASK,
        "--target",
        "llm",
        "--include-path",
        str(LM_EVAL_TASK_FILES),
        "--batch-size",
        "4",
    )
    hf = hf_run.scores()
    scores = {s["metric"]: s for s in out["scores"]}
    assert scores.keys() == {"acc", "acc_norm"}
    assert abs(scores["acc"]["value"] - hf.acc) <= 1e-9
    assert scores["acc_norm"]["value"] == hf.acc_norm
    for s in scores.values():  # CIs like every eval metric's, from the 20 questions
        assert s["per_doc"] and s["estimate"]["n"] == 20
        assert s["estimate"]["low"] <= s["value"] <= s["estimate"]["high"]

    # kept as an eval run: per question the model's choice and its scores, lineage to the
    # deployment revision, the suite and the documents
    eval_id = out["eval"]
    info = world.admin.registry.evals.get("bench", eval_id)
    assert info.status == "finished" and info.suite == f"lm-eval-{LM_EVAL_TASK}"
    assert {ref.split("@")[0] for ref in info.inputs} == {
        "deployment:llm",
        f"suite:lm-eval-{LM_EVAL_TASK}",
        f"dataset:lm-eval-{LM_EVAL_TASK}",
    }
    assert info.config["lm_eval"] == "0.4.13"
    assert world.project.key not in json.dumps(info.config)  # it travels in the environment
    summary, results = ev.load_run(world.admin, "bench", eval_id)  # as `genai eval show`
    assert summary.metrics["acc"].estimate.mean == pytest.approx(hf.acc)
    assert summary.metrics["acc_norm"].estimate.mean == pytest.approx(hf.acc_norm)
    per_doc = {int(r.row.id.rpartition("/")[2]): r for r in results}
    chosen = _hf_choice(hf_run)
    for doc_id, (acc, acc_norm) in hf.doc_acc.items():
        result = per_doc[doc_id]
        assert (result.scores["acc"].value, result.scores["acc_norm"].value) == (acc, acc_norm)
        assert result.answer.output == chosen[doc_id]

    # every request went through the gateway and is in the ledger, paid by the project
    assert wait_until(lambda: world.project.count() >= REQUESTS, 30), world.project.count()
    rows = world.project.rows()
    assert all(r.status == "ok" and r.model == "llm" for r in rows), rows
    assert sum(r.prompt_tokens for r in rows) > 0


def test_a_key_of_another_project_is_refused_before_lm_eval_starts(
    world: SimpleNamespace, lm_eval_python: Path, tiny: Any
) -> None:
    other = new_project(world.admin, "elsewhere")
    lines: list[str] = []
    with pytest.raises(UsageError, match="not a key of project 'bench'"):
        ev.lm_eval(
            world.admin,
            "bench",
            [LM_EVAL_TASK],
            target="llm",
            gateway=world.gw.v1,
            api_key=other.key,
            tokenizer=tiny.model,
            include_path=LM_EVAL_TASK_FILES,
            python=lm_eval_python,
            on_output=lines.append,
        )
    assert lines == []  # lm_eval never started
    assert world.admin.registry.evals.list("bench") == []
    assert world.project.count() == other.count() == 0


def test_a_failing_lm_eval_is_an_error_with_its_output_and_a_failed_run(
    world: SimpleNamespace, lm_eval_python: Path, tiny: Any
) -> None:
    lines: list[str] = []
    with pytest.raises(BackendError, match="lm_eval exited") as caught:
        ev.lm_eval(
            world.admin,
            "bench",
            ["no_such_task_anywhere"],
            target="llm",
            gateway=world.gw.v1,
            api_key=world.project.key,
            tokenizer=tiny.model,
            python=lm_eval_python,
            on_output=lines.append,
        )
    assert "no_such_task_anywhere" in caught.value.message  # the tail of its output
    assert lines  # streamed as it ran
    (failed,) = world.admin.registry.evals.list("bench")
    assert failed.status == "failed" and failed.suite == "lm-eval-no_such_task_anywhere"
    assert "no_such_task_anywhere" in failed.config["error"]
    assert [ref.split("@")[0] for ref in failed.inputs] == ["deployment:llm"]
