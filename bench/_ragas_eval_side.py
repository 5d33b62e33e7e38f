"""ragas's side of bench/eval_throughput.py, run by the clients venv's python (ragas 0.4.3
clashes with the project's pins, so it lives in its own venv: ``make clients``).

    .venv-clients/bin/python bench/_ragas_eval_side.py SPEC.json OUT.json

SPEC is ``{"base_url": ".../v1", "api_key", "model", "concurrency", "runs", "rows":
[{"question", "reference", "contexts"}, ...]}``. Each run does what a ragas user does:
ask the deployment every question with the openai SDK (``AsyncOpenAI``, ``concurrency``
requests at a time, through our gateway), build an ``EvaluationDataset`` and call
``ragas.evaluate()`` with ragas's non-LLM metrics (``RougeScore``, ``BleuScore``,
``ExactMatch``). ragas keeps no results between runs, so every run is a full run.

OUT gets ``{"ragas": version, "python": version, "import_s", "runs": [{"answer_s",
"score_s", "wall_s", "rows", "means": {...}}], "skipped": {metric: why}}``. Nothing here
leaves loopback: a connect elsewhere raises at once.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import socket
import sys
import time
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

_LOOPBACK = {"127.0.0.1", "::1", "localhost"}
_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address: Any) -> Any:
    if self.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0] if isinstance(address, tuple) else address
        if host not in _LOOPBACK:
            raise ConnectionRefusedError(f"the ragas side may only reach loopback: {address!r}")
    return _connect(self, address)


socket.socket.connect = _loopback_only  # type: ignore[method-assign,assignment]


async def _answers(spec: dict[str, Any]) -> list[str]:
    """Every question's answer from the deployment, through the gateway."""
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=spec["base_url"], api_key=spec["api_key"], max_retries=2)
    gate = asyncio.Semaphore(int(spec["concurrency"]))

    async def one(question: str) -> str:
        async with gate:
            reply = await client.chat.completions.create(
                model=spec["model"], messages=[{"role": "user", "content": question}]
            )
            return reply.choices[0].message.content or ""

    try:
        return list(await asyncio.gather(*(one(r["question"]) for r in spec["rows"])))
    finally:
        await client.close()


def _metrics() -> tuple[list[Any], dict[str, str]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from ragas.metrics import BleuScore, ExactMatch, RougeScore

        metrics: list[Any] = [RougeScore(), BleuScore(), ExactMatch()]
        skipped: dict[str, str] = {}
        try:
            from ragas.metrics import NonLLMStringSimilarity

            metrics.append(NonLLMStringSimilarity())
        except ImportError as exc:
            skipped["non_llm_string_similarity"] = str(exc).splitlines()[0]
    return metrics, skipped


def _one_run(spec: dict[str, Any]) -> dict[str, Any]:
    from ragas import EvaluationDataset, evaluate

    started = time.perf_counter()
    responses = asyncio.run(_answers(spec))
    answered = time.perf_counter()
    metrics, skipped = _metrics()
    dataset = EvaluationDataset.from_list(
        [
            {
                "user_input": row["question"],
                "response": response,
                "reference": row["reference"],
                "retrieved_contexts": row["contexts"],
            }
            for row, response in zip(spec["rows"], responses, strict=True)
        ]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        result = evaluate(dataset, metrics=metrics, show_progress=False, raise_exceptions=True)
    done = time.perf_counter()
    frame = result.to_pandas()
    means = {}
    for column in frame.columns:
        if column in {"user_input", "response", "reference", "retrieved_contexts"}:
            continue
        values = [float(v) for v in frame[column] if not math.isnan(float(v))]
        means[column] = sum(values) / len(values) if values else None
    return {
        "rows": len(responses),
        "answer_s": answered - started,
        "score_s": done - answered,
        "wall_s": done - started,
        "means": means,
        "skipped": skipped,
    }


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    started = time.perf_counter()
    import ragas

    _metrics()  # the metric modules' imports (nltk, rouge_score) are not a run's cost
    imported = time.perf_counter() - started
    runs = [_one_run(spec) for _ in range(int(spec["runs"]))]
    out = {
        "ragas": ragas.__version__,
        "python": sys.version.split()[0],
        "import_s": imported,
        "runs": runs,
        "skipped": runs[0]["skipped"] if runs else {},
    }
    Path(sys.argv[2]).write_text(json.dumps(out, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
