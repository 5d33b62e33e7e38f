"""ragas 0.4.3 judging with a `genai serve` deployment: run by the clients venv's python.

    .venv-clients/bin/python tests/clients/_ragas_driver.py SPEC.json OUT.json

SPEC is ``{"base_url": ".../v1", "model": "...", "max_tokens": N, "rows": [{"user_input",
"response", "retrieved_contexts", "reference"}, ...]}``. Each case below scores every row
and OUT gets ``{"records": [...], "requests": [...]}``: one record per case and row,
``{"case", "row", "score"}`` (a float, NaN written as null with ``"nan": true``) or
``{"case", "row", "error": "Type: message"}``, and the kind of every chat request sent
(``json_object``, ``tools:NAME``...).

The cases:

- ``faithfulness_json``: ``ragas.metrics.collections.Faithfulness`` with
  ``llm_factory(model, client=AsyncOpenAI(base_url=...))``, i.e. instructor's JSON mode
  (``response_format: {"type": "json_object"}`` and the schema in a system message).
- ``faithfulness_tools``: the same metric through instructor's TOOLS mode (a forced
  function call whose parameters are the output schema).
- ``context_precision_json``: ``ragas.metrics.collections.ContextPrecision``, JSON mode.
- ``evaluate_faithfulness``: the classic ``ragas.evaluate()`` over an
  ``EvaluationDataset`` with the ``Faithfulness`` metric and the same ``llm_factory`` LLM
  (rows it cannot score come back NaN and their errors are logged; we also catch them).

Nothing here leaves loopback: a connect elsewhere raises at once (as in the test suite),
so a client that tries to download something (tiktoken's BPE files, a hub model, ragas's
usage analytics) fails loudly instead of hanging.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import socket
import sys
import warnings
from typing import Any

os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

_LOOPBACK = {"127.0.0.1", "::1", "localhost"}
_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address: Any) -> Any:
    if self.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0] if isinstance(address, tuple) else address
        if host not in _LOOPBACK:
            raise ConnectionRefusedError(f"the ragas driver may only reach loopback: {address!r}")
    return _connect(self, address)


socket.socket.connect = _loopback_only  # type: ignore[method-assign]


def _error(exc: BaseException) -> str:
    """``Type: message``; instructor's IncompleteOutputException has an empty str() (its
    __init__ resets its args), so its docstring and the completion's finish_reason stand in."""
    message = str(exc) or (exc.__doc__ or "").strip()
    completion = getattr(exc, "last_completion", None)
    if completion is not None and getattr(completion, "choices", None):
        usage = getattr(completion, "usage", None)
        tokens = getattr(usage, "completion_tokens", "?")
        message += f" (finish_reason={completion.choices[0].finish_reason}, {tokens} tokens)"
    return f"{type(exc).__name__}: {message[:600]}"


def _record(case: str, row: int, value: Any) -> dict[str, Any]:
    score = float(value)
    if math.isnan(score):
        return {"case": case, "row": row, "score": None, "nan": True}
    return {"case": case, "row": row, "score": score, "nan": False}


class _Errors(logging.Handler):
    """Collects what ragas's executor logs for a failed job (``evaluate``'s row errors)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage()[:600])


async def _collection_case(name: str, metric: Any, rows: list[dict[str, Any]]) -> list[dict]:
    records = []
    for i, row in enumerate(rows):
        if name.startswith("context_precision"):
            kwargs = {
                "user_input": row["user_input"],
                "reference": row["reference"],
                "retrieved_contexts": row["retrieved_contexts"],
            }
        else:
            kwargs = {
                "user_input": row["user_input"],
                "response": row["response"],
                "retrieved_contexts": row["retrieved_contexts"],
            }
        try:
            result = await metric.ascore(**kwargs)
            records.append(_record(name, i, result.value))
        except Exception as exc:  # a row's failure is a result to report, not a crash
            records.append({"case": name, "row": i, "error": _error(exc)})
    return records


def _evaluate_case(llm: Any, rows: list[dict[str, Any]]) -> list[dict]:
    from ragas import EvaluationDataset, evaluate
    from ragas.run_config import RunConfig

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the classic metric's import
        from ragas.metrics import Faithfulness

    errors = _Errors()
    logging.getLogger("ragas").addHandler(errors)
    dataset = EvaluationDataset.from_list(
        [{k: row[k] for k in ("user_input", "response", "retrieved_contexts")} for row in rows]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        result = evaluate(
            dataset,
            metrics=[Faithfulness()],
            llm=llm,
            raise_exceptions=False,
            show_progress=False,
            run_config=RunConfig(max_retries=1, max_workers=2, timeout=240),
        )
    scores = result.to_pandas()["faithfulness"].tolist()
    records = [_record("evaluate_faithfulness", i, s) for i, s in enumerate(scores)]
    for record in records:
        if record["nan"]:
            record["logged_errors"] = errors.messages
    return records


def _request_kind(body: dict[str, Any]) -> str:
    """What structured output a chat request asked for: json_object, json_schema, tools:NAME
    (a forced function) or none."""
    if body.get("tools"):
        choice = body.get("tool_choice")
        name = choice["function"]["name"] if isinstance(choice, dict) else choice
        return f"tools:{name}"
    fmt = body.get("response_format") or {}
    return str(fmt.get("type", "none"))


def _judges(spec: dict[str, Any], sent: list[str]) -> tuple[Any, Any]:
    """The judge in instructor's JSON mode (``llm_factory``, as ragas's docs set it up) and
    in its TOOLS mode; every chat request's kind is appended to ``sent``."""
    import httpx
    import instructor
    from openai import AsyncOpenAI
    from ragas.llms import llm_factory
    from ragas.llms.base import InstructorLLM, InstructorModelArgs

    async def log_request(request: httpx.Request) -> None:
        if request.url.path.endswith("/chat/completions"):
            sent.append(_request_kind(json.loads(request.content)))

    http = httpx.AsyncClient(timeout=240, event_hooks={"request": [log_request]})
    client = AsyncOpenAI(
        base_url=spec["base_url"], api_key="unused", max_retries=0, http_client=http
    )
    model, max_tokens = spec["model"], spec["max_tokens"]
    json_llm = llm_factory(model, client=client, max_tokens=max_tokens)
    tools_llm = InstructorLLM(
        client=instructor.from_openai(client, mode=instructor.Mode.TOOLS),
        model=model,
        provider="openai",
        model_args=InstructorModelArgs(max_tokens=max_tokens),
    )
    return json_llm, tools_llm


async def _collections(spec: dict[str, Any], cases: list[str], sent: list[str]) -> list[dict]:
    from ragas.metrics.collections import ContextPrecision, Faithfulness

    json_llm, tools_llm = _judges(spec, sent)
    metrics = {
        "faithfulness_json": lambda: Faithfulness(llm=json_llm),
        "faithfulness_tools": lambda: Faithfulness(llm=tools_llm),
        "context_precision_json": lambda: ContextPrecision(llm=json_llm),
    }
    records: list[dict] = []
    for case in cases:
        if case in metrics:
            records += await _collection_case(case, metrics[case](), spec["rows"])
    return records


CASES = [
    "faithfulness_json",
    "faithfulness_tools",
    "context_precision_json",
    "evaluate_faithfulness",
]


def main() -> int:
    spec_path, out_path = sys.argv[1], sys.argv[2]
    with open(spec_path) as f:
        spec = json.load(f)
    cases = spec.get("cases") or CASES
    sent: list[str] = []
    records = asyncio.run(_collections(spec, cases, sent))
    if "evaluate_faithfulness" in cases:
        # evaluate() runs its own event loop: its judge gets a client of its own.
        records += _evaluate_case(_judges(spec, sent)[0], spec["rows"])
    with open(out_path, "w") as f:
        json.dump({"records": records, "requests": sent}, f, indent=1)
    for record in records:
        print(json.dumps(record))
    print("requests sent:", sent)
    return 0


if __name__ == "__main__":
    sys.exit(main())
