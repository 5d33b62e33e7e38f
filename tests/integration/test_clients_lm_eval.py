"""lm-evaluation-harness 0.4.13 against ``genai serve``: the same scores as lm-eval's own
``hf`` model.

A tiny multiple-choice task (tests/data/lm_eval: 20 questions of 2 to 4 choices, read from
a local JSON-lines file, no hub) is scored three ways, each by the ``lm_eval`` CLI of the
clients environment (tests/integration/_clients.py):

- ``--model hf``: lm-eval loads the tiny model itself (float32, CPU);
- ``--model local-completions`` with ``tokenized_requests=True``: token-id prompts, four to
  a request (``prompt: list[list[int]]``), ``echo``, ``logprobs: 1``, ``max_tokens: 1``;
  lm-eval reads ``token_logprobs[ctxlen:-1]`` and ``top_logprobs`` of each choice;
- the same with ``tokenized_requests=False``: the text prompt, one per request.

Every per-choice log-likelihood must agree with the hf run's (float32 on both sides, the
server batching rows), so acc and acc_norm agree exactly. The tiny model's tokenizer adds
no BOS token, so context lengths counted by lm-eval's tokenizer match the server's.

``tokenizer_backend=remote`` (lm-eval asking the server's ``/tokenizer_info``,
``/tokenize`` and ``/detokenize`` instead of loading a tokenizer) is the third client
setting.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from _clients import ROOT, clients_python, offline_env, request_counts

pytestmark = [pytest.mark.slow, pytest.mark.timeout(540)]

TASK = "genai_tiny_mc"
TASK_FILES = ROOT / "tests" / "data" / "lm_eval"
RUN_TIMEOUT_S = 420
QUESTIONS = 20
CHOICES = 59  # log-likelihood requests: one per (question, choice)


@dataclass
class Scores:
    acc: float
    acc_norm: float
    # doc id -> [(log-likelihood, is_greedy), ...] in choice order, and the doc's acc
    choices: dict[int, list[tuple[float, bool]]]
    doc_acc: dict[int, tuple[float, float]]


class LmEvalRun:
    """One ``lm_eval`` CLI run, started at once; ``scores()`` waits for it."""

    def __init__(self, python: Path, workdir: Path, name: str, model_args: list[str]) -> None:
        self.out = workdir / f"out-{name}"
        self.log = workdir / f"{name}.log"
        lm_eval = python.parent / "lm_eval"
        command = [
            str(lm_eval),
            *model_args,
            "--tasks",
            TASK,
            "--include_path",
            str(workdir),
            "--output_path",
            str(self.out),
            "--log_samples",
        ]
        self._scores: Scores | None = None
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                command,
                cwd=workdir,  # the task's data_files path is relative to it
                env=offline_env(workdir),
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def scores(self) -> Scores:
        if self._scores is None:
            self._scores = self._read()
        return self._scores

    def _read(self) -> Scores:
        try:
            code = self.process.wait(timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.stop()
            pytest.fail(f"lm_eval ran past {RUN_TIMEOUT_S} s:\n{self.tail()}")
        assert code == 0, f"lm_eval exited {code}:\n{self.tail()}"
        results = json.loads(next(self.out.rglob("results_*.json")).read_text())
        task = results["results"][TASK]
        samples = [
            json.loads(line)
            for line in next(self.out.rglob(f"samples_{TASK}_*.jsonl")).read_text().splitlines()
        ]
        assert len(samples) == QUESTIONS, self.tail()
        return Scores(
            acc=task["acc,none"],
            acc_norm=task["acc_norm,none"],
            choices={
                s["doc_id"]: [(float(ll), greedy == "True") for ll, greedy in s["filtered_resps"]]
                for s in samples
            },
            doc_acc={s["doc_id"]: (s["acc"], s["acc_norm"]) for s in samples},
        )

    def tail(self) -> str:
        lines = self.log.read_text(errors="replace").splitlines()
        return "\n".join(line[:400] for line in lines[-40:])


def _workdir(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name in ("tiny_mc.yaml", "tiny_mc.jsonl"):
        shutil.copy(TASK_FILES / name, root / name)
    return root


@pytest.fixture(scope="module")
def lm_eval_python() -> Path:
    return clients_python("lm_eval", "transformers", "torch")


@pytest.fixture(scope="module")
def served(lm_eval_python, tiny, run_server):
    with run_server(tiny.model) as server:
        yield server


@pytest.fixture(scope="module")
def hf_run(lm_eval_python, tiny, tmp_path_factory) -> Iterator[LmEvalRun]:
    """lm-eval's own scoring of the tiny model, started once for the module (the tests run
    their server-side scoring beside it)."""
    workdir = _workdir(tmp_path_factory.mktemp("lm-eval-hf"))
    run = LmEvalRun(
        lm_eval_python,
        workdir,
        "hf",
        [
            "--model",
            "hf",
            "--model_args",
            f"pretrained={tiny.model},dtype=float32",
            "--device",
            "cpu",
            "--batch_size",
            "1",
        ],
    )
    yield run
    run.stop()


def local_completions(
    python: Path, workdir: Path, url: str, *, batch_size: int, **model_args: Any
) -> LmEvalRun:
    args = ",".join(
        [f"model=tiny-llama,base_url={url}/v1/completions"]
        + [f"{k}={v}" for k, v in model_args.items()]
    )
    name = "local-" + "-".join(f"{k}={v}" for k, v in model_args.items() if k != "tokenizer")
    return LmEvalRun(
        python,
        workdir,
        name.replace("/", "_"),
        ["--model", "local-completions", "--model_args", args, "--batch_size", str(batch_size)],
    )


def assert_same_scores(served_scores: Scores, hf: Scores) -> None:
    assert served_scores.choices.keys() == hf.choices.keys()
    for doc, expected in hf.choices.items():
        got = served_scores.choices[doc]
        assert len(got) == len(expected), doc
        for (ll, greedy), (hf_ll, hf_greedy) in zip(got, expected, strict=True):
            assert ll == pytest.approx(hf_ll, rel=1e-5, abs=1e-3), (doc, got, expected)
            assert greedy == hf_greedy, (doc, got, expected)
        assert served_scores.doc_acc[doc] == hf.doc_acc[doc], doc
    assert abs(served_scores.acc - hf.acc) <= 1e-6
    assert served_scores.acc_norm == hf.acc_norm


@pytest.mark.parametrize(
    ("tokenized", "batch_size"),
    [pytest.param(True, 4, id="token-ids-batched"), pytest.param(False, 1, id="text")],
)
def test_local_completions_scores_equal_lm_evals_own(
    served, hf_run, lm_eval_python, tiny, tmp_path, tokenized, batch_size
):
    before = request_counts(httpx.get(served.url + "/metrics").text, "completions")
    run = local_completions(
        lm_eval_python,
        _workdir(tmp_path),
        served.url,
        batch_size=batch_size,
        tokenizer=tiny.model,
        tokenized_requests=tokenized,
    )
    scores = run.scores()
    assert_same_scores(scores, hf_run.scores())

    after = request_counts(httpx.get(served.url + "/metrics").text, "completions")
    answered = after.get("200", 0) - before.get("200", 0)
    assert answered >= -(-CHOICES // batch_size), (before, after)
    refused = {s: n - before.get(s, 0) for s, n in after.items() if s != "200"}
    assert not any(refused.values()), refused


def test_local_completions_with_the_servers_tokenizer(served, lm_eval_python, tmp_path, request):
    """``tokenizer_backend=remote``: no local tokenizer; lm-eval counts context lengths
    with the server's ``/tokenize`` and turns token ids back into text (text prompts,
    four to a request: ``prompt: list[str]``) with ``/detokenize``."""
    # lm-eval's RemoteTokenizer.encode, as it sends it (no model; no special tokens)
    probe = httpx.post(
        served.url + "/tokenize", json={"prompt": "test", "add_special_tokens": False}
    )
    assert probe.status_code == 200, probe.text
    run = local_completions(
        lm_eval_python,
        _workdir(tmp_path),
        served.url,
        batch_size=4,
        tokenizer_backend="remote",
        tokenized_requests=False,
    )
    hf_run = request.getfixturevalue("hf_run")
    assert_same_scores(run.scores(), hf_run.scores())
