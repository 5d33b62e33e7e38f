"""The ragas worker: ragas 0.4.3 scoring samples for eval's ``ragas_*`` metrics.

It runs as a script (``python _ragas_worker.py``) under the python of an environment with
ragas (its ``instructor`` pins clash with the project's openai/jiter, so it usually lives
in an environment of its own), and imports nothing of this project. It reads one JSON
request a line on stdin and writes one JSON response a line, in any order, each with its
request's ``id``::

    {"id": 1, "metric": "faithfulness", "fields": {...}, "judge": "DEPLOYMENT",
     "embeddings": "DEPLOYMENT", "options": {...}}
    {"id": 1, "value": 0.5}        or        {"id": 1, "reason": "..."}

The judge (and the embeddings) are deployments reached through the gateway named by
``GENAI_RAGAS_GATEWAY`` with the key in ``GENAI_RAGAS_API_KEY``. Nothing else is reached:
ragas's usage analytics are off, the Hugging Face hub is offline, and a connection to any
host but the gateway's and loopback fails at once. Whatever a library prints goes to
stderr, so stdout carries the protocol only.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import socket
import sys
import warnings
from typing import Any, TextIO
from urllib.parse import urlsplit

OFFLINE = {
    "RAGAS_DO_NOT_TRACK": "true",
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
}
_TIMEOUT_S = 300.0  # one judge or embeddings call (the run's metric timeout bounds a sample)
_NO_STORE = {"x-genai-cache-control": "no-store"}  # judging never fills the gateway's cache


def _guard_network(gateway: str) -> None:
    """Connections to the gateway's host and loopback only; anything else fails at once."""
    allowed = {"127.0.0.1", "::1", "localhost", urlsplit(gateway).hostname or "127.0.0.1"}
    connect = socket.socket.connect

    def only_allowed(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            host = address[0] if isinstance(address, tuple) else address
            if host not in allowed:
                raise ConnectionRefusedError(f"the ragas worker may not reach {address!r}")
        return connect(self, address)

    socket.socket.connect = only_allowed  # type: ignore[method-assign,assignment]


class Scorer:
    """ragas's metrics, built on first use, with the judge LLMs and embeddings by name."""

    def __init__(self, gateway: str, api_key: str) -> None:
        self.gateway, self.api_key = gateway, api_key
        self._llms: dict[tuple[str, int], Any] = {}
        self._embeddings: dict[str, Any] = {}
        self._client: Any = None

    def client(self) -> Any:
        if self._client is None:
            from openai import AsyncOpenAI

            self._client = AsyncOpenAI(
                base_url=self.gateway,
                api_key=self.api_key,
                max_retries=0,
                timeout=_TIMEOUT_S,
                default_headers=_NO_STORE,
            )
        return self._client

    def llm(self, judge: str, max_tokens: int) -> Any:
        if (judge, max_tokens) not in self._llms:
            from ragas.llms import llm_factory  # type: ignore[import-not-found]

            llm = llm_factory(judge, client=self.client(), max_tokens=max_tokens)
            self._llms[(judge, max_tokens)] = llm
        return self._llms[(judge, max_tokens)]

    def embeddings(self, name: str) -> Any:
        if name not in self._embeddings:
            from ragas.embeddings import OpenAIEmbeddings  # type: ignore[import-not-found]

            self._embeddings[name] = OpenAIEmbeddings(client=self.client(), model=name)
        return self._embeddings[name]

    async def score(self, request: dict[str, Any]) -> float:
        metric, fields = request["metric"], request["fields"]
        options = request.get("options") or {}
        if metric in _STRING_METRICS:
            return await _STRING_METRICS[metric](fields, options)
        llm = self.llm(request["judge"], int(options.get("max_tokens", 1024)))
        from ragas.metrics import collections as rc  # type: ignore[import-not-found]

        built: Any
        if metric == "faithfulness":
            built = rc.Faithfulness(llm=llm)
        elif metric == "answer_relevancy":
            strictness = int(options.get("strictness", 3))
            embeddings = self.embeddings(request["embeddings"])
            built = rc.AnswerRelevancy(llm=llm, embeddings=embeddings, strictness=strictness)
        elif metric == "context_precision":
            built = rc.ContextPrecision(llm=llm)
        elif metric == "context_recall":
            built = rc.ContextRecall(llm=llm)
        else:
            raise ValueError(f"unknown ragas metric {metric!r}")
        return float((await built.ascore(**fields)).value)


async def _rouge(fields: dict[str, Any], options: dict[str, Any]) -> float:
    from ragas.metrics.collections import RougeScore  # type: ignore[import-not-found]

    metric = RougeScore(
        rouge_type=options.get("rouge_type", "rougeL"), mode=options.get("mode", "fmeasure")
    )
    return float((await metric.ascore(**fields)).value)


async def _bleu(fields: dict[str, Any], options: dict[str, Any]) -> float:
    from ragas.metrics.collections import BleuScore

    return float((await BleuScore().ascore(**fields)).value)


async def _nonllm(fields: dict[str, Any], options: dict[str, Any], *, recall: bool) -> float:
    from ragas import SingleTurnSample  # type: ignore[import-not-found]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the classic metrics' deprecation notice
        from ragas.metrics import (
            NonLLMContextPrecisionWithReference,
            NonLLMContextRecall,
        )

    threshold = float(options.get("threshold", 0.5))
    metric: Any = (
        NonLLMContextRecall(threshold=threshold)
        if recall
        else NonLLMContextPrecisionWithReference(threshold=threshold)
    )
    return float(await metric.single_turn_ascore(SingleTurnSample(**fields)))


async def _nonllm_precision(fields: dict[str, Any], options: dict[str, Any]) -> float:
    return await _nonllm(fields, options, recall=False)


async def _nonllm_recall(fields: dict[str, Any], options: dict[str, Any]) -> float:
    return await _nonllm(fields, options, recall=True)


_STRING_METRICS = {
    "rouge": _rouge,
    "bleu": _bleu,
    "nonllm_context_precision": _nonllm_precision,
    "nonllm_context_recall": _nonllm_recall,
}


def describe(error: BaseException) -> str:
    """``Type: message``; instructor's IncompleteOutputException has an empty str(), so its
    docstring stands in."""
    message = str(error).strip() or (error.__doc__ or "").strip()
    first = message.splitlines()[0][:300] if message else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


async def answer(scorer: Scorer, request: dict[str, Any]) -> dict[str, Any]:
    """The response to one request: its value, or why there is none (NaN included)."""
    out: dict[str, Any] = {"id": request.get("id")}
    try:
        value = await scorer.score(request)
    except Exception as error:  # a row's failure is a reason, never the worker's end
        out["reason"] = f"ragas failed: {describe(error)}"
        return out
    if math.isfinite(value):
        out["value"] = value
    else:
        out["reason"] = f"ragas returned {value!r} (it could not score the sample)"
    return out


async def serve(scorer: Scorer, stdin: TextIO, stdout: TextIO) -> None:
    """Answer every request of ``stdin`` concurrently until it closes."""
    pending: set[asyncio.Task[None]] = set()

    async def one(request: dict[str, Any]) -> None:
        stdout.write(json.dumps(await answer(scorer, request)) + "\n")
        stdout.flush()

    while line := await asyncio.to_thread(stdin.readline):
        if not line.strip():
            continue
        task = asyncio.create_task(one(json.loads(line)))
        pending.add(task)
        task.add_done_callback(pending.discard)
    if pending:
        await asyncio.gather(*pending)


def main() -> int:
    for key, value in OFFLINE.items():
        os.environ.setdefault(key, value)
    gateway = os.environ.get("GENAI_RAGAS_GATEWAY", "http://127.0.0.1/v1")
    api_key = os.environ.pop("GENAI_RAGAS_API_KEY", "unused")
    _guard_network(gateway)
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints go to stderr
    import ragas  # fails here, visibly, without ragas

    protocol.write(json.dumps({"ready": ragas.__version__}) + "\n")
    protocol.flush()
    asyncio.run(serve(Scorer(gateway, api_key), sys.stdin, protocol))
    return 0


if __name__ == "__main__":
    sys.exit(main())
