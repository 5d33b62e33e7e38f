"""The example suites of examples/eval load, and their rows are valid eval rows."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

import eval as ev
from genai.errors import ValidationError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "eval"


def test_the_docs_bot_suite_and_its_rows_load() -> None:
    suite = ev.load_suite(EXAMPLES / "docs-bot.yaml")
    rows = ev.rows_of([json.loads(x) for x in Path(suite.dataset).read_text().splitlines()])
    assert len(rows) == 20 and all(r.reference for r in rows)
    assert [m.label for m in suite.metrics][-1] == "cites"


def test_the_pubmedqa_converter_writes_a_suite_whose_rows_load(tmp_path: Path) -> None:
    data = tmp_path / "pubmedqa"
    data.mkdir()
    items = {
        "1": {
            "QUESTION": "Does A help?",
            "CONTEXTS": "['A helped.', 'B did not.']",
            "final_decision": "yes",
            "LONG_ANSWER": "A helps.",
            "YEAR": "2001",
        },
        "2": {
            "QUESTION": "Does B help?",
            "CONTEXTS": ["B did not."],
            "final_decision": "no",
            "LONG_ANSWER": "B does not.",
            "YEAR": "2002",
        },
    }
    (data / "ori_pqal.json").write_text(json.dumps(items))
    (data / "test_ground_truth.json").write_text(json.dumps({"2": "no"}))
    spec = importlib.util.spec_from_file_location("pubmedqa_example", EXAMPLES / "pubmedqa.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "suite"
    argv = sys.argv
    sys.argv = ["pubmedqa.py", "--data", str(data), "--out", str(out)]
    try:
        module.main()
    finally:
        sys.argv = argv

    suite = ev.load_suite(out / "pubmedqa.yaml")
    rows = ev.rows_of([json.loads(x) for x in (out / "pubmedqa.jsonl").read_text().splitlines()])
    assert [r.id for r in rows] == ["2", "1"]  # test questions first
    assert rows[1].reference_contexts == ("A helped.", "B did not.")
    assert rows[1].messages[-1].content.startswith("[1] A helped.\n[2] B did not.")
    assert rows[0].reference == "no" and rows[0].metadata["long_answer"] == "B does not."
    assert {m.label for m in suite.metrics} == {"decision", "answers_first"}


def test_a_suite_sets_request_body_fields_only() -> None:
    import pytest

    from genai.errors import ValidationError

    base = {"name": "s", "dataset": "dataset:d@1"}
    for key in ("extra_headers", "timeout", "model"):
        with pytest.raises(ValidationError, match=f"params may not set {key}"):
            ev.load_suite({**base, "params": {key: {}}})
    assert ev.load_suite({**base, "params": {"temperature": 0}}).params == {"temperature": 0}


def test_a_chat_fine_tuning_row_is_asked_without_its_answer_which_becomes_the_reference() -> None:
    ask = {"role": "user", "content": "What is the capital of Peru?"}
    answer = {"role": "assistant", "content": '{"country": "Peru", "capital": "Lima"}'}
    tuned, explicit, open_ended = ev.rows_of(
        [
            {"messages": [ask, answer]},
            {"messages": [ask, answer], "reference": "Lima"},
            {"messages": [ask]},
        ]
    )
    assert [m.role for m in tuned.messages] == ["user"]
    assert tuned.reference == answer["content"]
    assert [m.role for m in explicit.messages] == ["user"] and explicit.reference == "Lima"
    assert open_ended.reference is None
    with pytest.raises(ValidationError, match="row 1: 'messages' has only the assistant's turn"):
        ev.rows_of([{"messages": [answer]}])
