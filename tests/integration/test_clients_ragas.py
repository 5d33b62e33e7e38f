"""ragas 0.4.3 with a `genai serve` deployment as its judge LLM.

tests/clients/_ragas_driver.py runs in the clients environment (tests/integration/
_clients.py) and points ragas at the server as its docs say (``llm_factory(model,
client=AsyncOpenAI(base_url=...))``): ``Faithfulness`` and ``ContextPrecision`` in
instructor's JSON mode (``response_format: {"type": "json_object"}``, retries as a
multi-turn conversation), ``Faithfulness`` in instructor's TOOLS mode (a forced function
call), and the classic ``ragas.evaluate()``.

The judge is a tiny random model (a tools chat template, an 8192-token window: ragas's
prompts are ~1,700 of its tokens and grow with each retry). Its JSON is valid but
nonsense, and with ``max_tokens`` kept small (CPU time) it is usually cut off. What must
hold: every request ragas sends is answered 200 (the server refuses nothing ragas asks for),
and every row comes back as a score (a float, or NaN where ragas itself gives NaN, its
logged error visible) or as a row error raised by ragas/instructor on the content, never an
HTTP error.
"""

from __future__ import annotations

import json
import subprocess

import httpx
import pytest
from _clients import CLIENTS, clients_python, offline_env, request_counts

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

MAX_TOKENS = 32
ROWS = [
    {
        "user_input": "Where is the help desk?",
        "response": "The help desk is on the second floor. It opens at nine.",
        "retrieved_contexts": ["The help desk is on the second floor and opens at 9 am."],
        "reference": "On the second floor.",
    },
    {
        "user_input": "How do I close an account?",
        "response": "Ask the knowledge bot.",
        "retrieved_contexts": ["Questions about accounts are answered by a knowledge bot."],
        "reference": "Ask the knowledge bot.",
    },
]
CASES = ["faithfulness_json", "faithfulness_tools", "context_precision_json"]
# What a row may fail with: instructor/pydantic judging the (nonsense) content. An HTTP
# error (openai.BadRequestError, APIStatusError...) is not among them.
CONTENT_ERRORS = ("IncompleteOutputException", "InstructorRetryException", "ValidationError")
HTTP_ERRORS = ("APIStatusError", "BadRequestError", "APIConnectionError", "Error code: ")


@pytest.fixture(scope="module")
def ragas_python():
    return clients_python("ragas", "instructor", "openai")


@pytest.fixture(scope="module")
def judge(ragas_python, tmp_path_factory, run_server):
    from genai.testing import tiny_model

    model = tiny_model(tmp_path_factory.mktemp("ragas") / "judge", tools=True, context_window=8192)
    with run_server(model) as server:
        yield server


def test_ragas_scores_rows_with_a_served_judge(ragas_python, judge, tmp_path):
    spec = {
        "base_url": judge.v1,
        "model": "tiny-llama",
        "max_tokens": MAX_TOKENS,
        "rows": ROWS,
        "cases": [*CASES, "evaluate_faithfulness"],
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    done = subprocess.run(
        [str(ragas_python), str(CLIENTS / "_ragas_driver.py"), "spec.json", "out.json"],
        cwd=tmp_path,
        env=offline_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    output = (done.stdout + done.stderr)[-6000:]
    assert done.returncode == 0, output
    result = json.loads((tmp_path / "out.json").read_text())
    records, sent = result["records"], result["requests"]

    # ragas asked for what we claim it asks for: JSON mode and a forced tool call.
    assert "json_object" in sent and "tools:StatementGeneratorOutput" in sent, sent
    # ...and the server answered every request it sent, refusing none.
    counts = request_counts(httpx.get(judge.url + "/metrics").text, "chat")
    assert counts == {"200": float(len(sent))}, (counts, sent)

    assert {(r["case"], r["row"]) for r in records} == {
        (case, row) for case in spec["cases"] for row in range(len(ROWS))
    }, output
    for record in records:
        if "error" in record:
            assert record["error"].startswith(CONTENT_ERRORS), record
            assert not any(h in record["error"] for h in HTTP_ERRORS), record
        elif record["nan"]:
            # ragas's own NaN: a row evaluate() could not score (it logged why), or no
            # statements to judge.
            for message in record.get("logged_errors", []):
                assert not any(h in message for h in HTTP_ERRORS), record
        else:
            assert 0.0 <= record["score"] <= 1.0, record
