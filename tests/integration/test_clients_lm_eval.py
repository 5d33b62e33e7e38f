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

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _clients import (
    LmEvalRun,
    Scores,
    clients_python,
    hf_lm_eval,
    lm_eval_workdir,
    request_counts,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(540)]

CHOICES = 59  # log-likelihood requests: one per (question, choice)


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
    run = hf_lm_eval(lm_eval_python, tiny.model, tmp_path_factory.mktemp("lm-eval-hf"))
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
        lm_eval_workdir(tmp_path),
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
        lm_eval_workdir(tmp_path),
        served.url,
        batch_size=4,
        tokenizer_backend="remote",
        tokenized_requests=False,
    )
    hf_run = request.getfixturevalue("hf_run")
    assert_same_scores(run.scores(), hf_run.scores())
