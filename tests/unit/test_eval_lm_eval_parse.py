"""What ``lm_eval --output_path DIR --log_samples`` wrote, read back (eval/_lm_eval_output.py),
and the pieces of ``eval.lm_eval`` that need no process: suite names, the interpreter, the
streamed output.

tests/data/lm_eval_results is lm-evaluation-harness 0.4.13's output cut down by hand from
real runs: three tasks of three documents — ``genai_tiny_mc`` (multiple choice: acc,
acc_norm), ``genai_tiny_gen`` (generation, two filters: ``exact_match,strict`` and
``exact_match,whole``) and ``genai_tiny_ppl`` (rolling log-likelihood: perplexities, whose
per-document values are pairs and whose stderr is "N/A").
"""

from __future__ import annotations

import importlib.util
import io
import json
import shutil
from pathlib import Path

import pytest

from eval._lm_eval import suite_name
from eval._lm_eval_output import LmEvalScore, read_output
from eval._lm_eval_proc import _lines, lm_eval_python
from genai.errors import BackendError, MissingDependencyError, UsageError
from genai.validation import check_resource_name

OUTPUT = Path(__file__).resolve().parents[1] / "data" / "lm_eval_results"
RESULTS = "llm/results_2026-01-07T08-31-30.142269.json"


def _by_name(scores: list[LmEvalScore]) -> dict[str, LmEvalScore]:
    return {s.name: s for s in scores}


def test_every_reported_metric_is_read_with_its_stderr_and_task_prefix() -> None:
    out = read_output(OUTPUT)

    assert out.version == "0.4.13"
    assert out.tasks == ["genai_tiny_gen", "genai_tiny_mc", "genai_tiny_ppl"]
    scores = _by_name(out.scores)
    assert list(scores) == [
        "genai_tiny_gen/exact_match,strict",
        "genai_tiny_gen/exact_match,whole",
        "genai_tiny_mc/acc",
        "genai_tiny_mc/acc_norm",
        "genai_tiny_ppl/word_perplexity",
        "genai_tiny_ppl/bits_per_byte",
    ]
    acc = scores["genai_tiny_mc/acc"]
    assert (acc.task, acc.metric, acc.filter) == ("genai_tiny_mc", "acc", "none")
    assert acc.value == pytest.approx(2 / 3) and acc.stderr == pytest.approx(1 / 3)
    assert acc.higher_is_better and acc.per_doc
    strict = scores["genai_tiny_gen/exact_match,strict"]
    assert (strict.metric, strict.filter, strict.per_doc) == ("exact_match", "strict", True)
    # a perplexity: lm-eval's figure only, no stderr ("N/A"), lower is better
    ppl = scores["genai_tiny_ppl/word_perplexity"]
    assert ppl.value == pytest.approx(1523.7719) and ppl.stderr is None
    assert not ppl.per_doc and not ppl.higher_is_better
    assert (ppl.estimate.mean, ppl.estimate.low, ppl.estimate.high) == (ppl.value, None, None)
    assert ppl.estimate.n == 3


def test_each_document_has_its_prompt_target_answer_and_values_of_every_filter() -> None:
    docs = {d.id: d for d in read_output(OUTPUT).docs}

    assert list(docs) == [f"genai_tiny_{t}/{i}" for t in ("gen", "mc", "ppl") for i in range(3)]
    mc = docs["genai_tiny_mc/0"]
    assert mc.prompt == "Question: Which animal jumps over the lazy dog?\nAnswer:"
    assert mc.target == "the quick brown fox"  # the target's choice, as text
    assert mc.output == "the lazy dog"  # the choice of the highest log-likelihood
    assert mc.values == {"genai_tiny_mc/acc": 0.0, "genai_tiny_mc/acc_norm": 1.0}
    assert docs["genai_tiny_mc/2"].output == "five"
    gen = docs["genai_tiny_gen/0"]
    assert (gen.target, gen.output) == ("Paris", " Paris is nice")  # the unfiltered answer
    assert gen.values == {
        "genai_tiny_gen/exact_match,strict": 1.0,
        "genai_tiny_gen/exact_match,whole": 0.0,
    }
    # per-document pairs are no values: the perplexity keeps lm-eval's figure only
    assert docs["genai_tiny_ppl/1"].values == {}
    assert docs["genai_tiny_ppl/1"].prompt == "Refunds are paid to the card."


def _one_task(tmp_path: Path, task: str) -> Path:
    """The fixture with only ``task`` in it."""
    shutil.copytree(OUTPUT, tmp_path / "out")
    results_file = tmp_path / "out" / RESULTS
    results = json.loads(results_file.read_text())
    for section in ("results", "configs", "higher_is_better", "n-samples"):
        results[section] = {task: results[section][task]}
    results_file.write_text(json.dumps(results))
    for path in (tmp_path / "out" / "llm").glob("samples_*.jsonl"):
        if not path.name.startswith(f"samples_{task}_"):
            path.unlink()
    return tmp_path / "out"


def test_one_task_names_metrics_as_lm_eval_does_without_the_none_filter(tmp_path: Path) -> None:
    out = read_output(_one_task(tmp_path, "genai_tiny_mc"))

    assert [s.name for s in out.scores] == ["acc", "acc_norm"]
    assert [d.id for d in out.docs] == ["genai_tiny_mc/0", "genai_tiny_mc/1", "genai_tiny_mc/2"]
    assert out.docs[1].values == {"acc": 1.0, "acc_norm": 1.0}
    # before the run's own CI replaces it: lm-eval's value ± 1.96 stderr
    acc = out.scores[0].estimate
    assert acc.low == pytest.approx(2 / 3 - 1.959964 / 3, abs=1e-6)
    assert acc.high == pytest.approx(2 / 3 + 1.959964 / 3, abs=1e-6)


def test_values_whose_mean_is_not_the_reported_figure_are_not_per_document(
    tmp_path: Path,
) -> None:
    """A metric lm-eval aggregates otherwise than by the mean (a corpus BLEU, an F1 over
    all documents) keeps lm-eval's figure only."""
    root = _one_task(tmp_path, "genai_tiny_gen")
    results_file = root / RESULTS
    results = json.loads(results_file.read_text())
    results["results"]["genai_tiny_gen"]["exact_match,whole"] = 0.5
    results_file.write_text(json.dumps(results))

    out = read_output(root)

    per_doc = {s.name: s.per_doc for s in out.scores}
    assert per_doc == {"exact_match,strict": True, "exact_match,whole": False}
    assert all(set(d.values) == {"exact_match,strict"} for d in out.docs)


def test_no_results_is_a_backend_error(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="lm_eval wrote no results"):
        read_output(tmp_path)


def test_suite_names_are_valid_registry_names_whatever_the_tasks() -> None:
    assert suite_name(["genai_tiny_mc"]) == "lm-eval-genai_tiny_mc"
    assert suite_name(["hellaswag", "arc_easy"]) == "lm-eval-arc_easy.hellaswag"
    assert suite_name(["./tasks/my task.yaml"]) == "lm-eval-.-tasks-my-task.yaml"
    long = suite_name([f"task_{i}" for i in range(40)])
    assert len(long) <= 100 and long.startswith("lm-eval-task_0.task_1")
    for name in (long, suite_name(["./tasks/my task.yaml"]), suite_name(["x/"])):
        assert check_resource_name(name) == name
    assert long != suite_name([f"task_{i}" for i in range(41)])


def test_the_interpreter_is_the_one_named_or_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        lm_eval_python(tmp_path / "nothing" / "python")
    fake = tmp_path / "python"
    fake.write_text("")
    assert lm_eval_python(fake) == fake
    monkeypatch.setenv("GENAI_LM_EVAL_PYTHON", str(fake))
    assert lm_eval_python() == fake
    monkeypatch.delenv("GENAI_LM_EVAL_PYTHON")
    if importlib.util.find_spec("lm_eval") is not None:
        pytest.skip("lm-eval is installed in this environment")
    with pytest.raises(MissingDependencyError) as caught:
        lm_eval_python()
    assert "genai-platform[lm-eval]" in caught.value.message
    assert "GENAI_LM_EVAL_PYTHON" in caught.value.message


class _Chunks(io.RawIOBase):
    """A pipe that hands out its bytes a few at a time."""

    def __init__(self, data: bytes, size: int) -> None:
        self._data, self._size = data, size

    def readable(self) -> bool:
        return True

    def read1(self, n: int = -1) -> bytes:
        chunk, self._data = self._data[: self._size], self._data[self._size :]
        return chunk


def test_output_lines_come_as_they_are_written_progress_updates_included() -> None:
    text = "INFO start\nRequesting API:  50%|█    | 1/2\rRequesting API: 100%|██| 2/2\n\ndone é"
    lines = list(_lines(_Chunks(text.encode(), 3)))  # 3 bytes: a character split in two

    assert lines == [
        "INFO start",
        "Requesting API:  50%|█    | 1/2",
        "Requesting API: 100%|██| 2/2",
        "done é",
    ]
