"""GPTCache, driven over JSON lines: runs in its own venv (bench/.venvs/gptcache), never ours.

    bench/.venvs/gptcache/bin/python bench/_cache_gptcache_driver.py

One JSON request per stdin line, one JSON answer per stdout line (``{"ok": true, ...}`` or
``{"ok": false, "error": ...}``); everything else the library prints goes to stderr. Vectors
travel as ``.npy`` files. The cache is GPTCache's own similar-cache setup
(``gptcache.adapter.api.init_similar_cache`` spelled out so that the eviction size can be
raised above its 1,000-entry default): ``get_prompt`` pre-processing, the ``sqlite,faiss``
data manager, ``SearchDistanceEvaluation()``, ``temperature_softmax`` post-processing,
``Config(similarity_threshold=...)``; only the embedding function is ours: it hands GPTCache
the all-MiniLM-L6-v2 vector that the benchmark computed for the text (the same vectors that
our cache gets). Lookups go through ``gptcache.adapter.api.get`` (the whole adapter path:
pre-process, search, scalar fetch, evaluation, post-process, hit report).

Requests: ``info``; ``open`` (dir, dimension, max_size, threshold); ``insert`` (questions,
answers, vectors); ``query`` (questions, vectors, threshold): the answer or null per query,
its similarity (GPTCache's rank / max rank, as its hit callback reports it) and the seconds
``api.get`` took; ``close``.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import sys
import time
from typing import Any

import numpy as np
from gptcache import Cache, Config
from gptcache.adapter import api
from gptcache.embedding.base import BaseEmbedding
from gptcache.manager import manager_factory
from gptcache.manager.vector_data import manager as vector_manager
from gptcache.processor.post import temperature_softmax
from gptcache.processor.pre import get_prompt
from gptcache.similarity_evaluation import SearchDistanceEvaluation


class Precomputed(BaseEmbedding):
    """Returns the vector the driver set for the text about to be looked up or stored."""

    def __init__(self, dimension: int) -> None:
        self._dimension = dimension
        self.next: np.ndarray | None = None

    def to_embeddings(self, data: Any, **_: Any) -> np.ndarray:
        if self.next is None:
            raise RuntimeError(f"no vector was set for {data!r}")
        vector, self.next = self.next, None
        return vector

    @property
    def dimension(self) -> int:
        return self._dimension


class Driver:
    def __init__(self) -> None:
        self.cache: Cache | None = None
        self.embedding: Precomputed | None = None

    def info(self, _: dict) -> dict:
        return {
            "gptcache": importlib.metadata.version("gptcache"),
            "faiss": importlib.metadata.version("faiss-cpu"),
            "numpy": np.__version__,
            "default_threshold": Config().similarity_threshold,
            "evaluation_range": list(SearchDistanceEvaluation().range()),
            "faiss_top_k": vector_manager.TOP_K,
        }

    def open(self, req: dict) -> dict:
        self.close({})
        self.embedding = Precomputed(req["dimension"])
        data_manager = manager_factory(
            "sqlite,faiss",
            data_dir=req["dir"],
            vector_params={"dimension": req["dimension"]},
            eviction_params={"max_size": req["max_size"]},
        )
        self.cache = Cache()
        self.cache.init(
            pre_embedding_func=get_prompt,
            embedding_func=self.embedding.to_embeddings,
            data_manager=data_manager,
            similarity_evaluation=SearchDistanceEvaluation(),
            post_process_messages_func=temperature_softmax,
            config=Config(similarity_threshold=req["threshold"]),
        )
        return {}

    def insert(self, req: dict) -> dict:
        assert self.cache is not None, "open first"
        vectors = np.load(req["vectors"])
        started = time.perf_counter()
        self.cache.data_manager.import_data(
            req["questions"], req["answers"], list(vectors), [None] * len(vectors)
        )
        return {"seconds": time.perf_counter() - started}

    def query(self, req: dict) -> dict:
        assert self.cache is not None and self.embedding is not None, "open first"
        self.cache.config.similarity_threshold = req["threshold"]
        vectors = np.load(req["vectors"])
        answers: list[str | None] = []
        scores: list[float | None] = []
        seconds: list[float] = []
        seen: list[float] = []
        for question, vector in zip(req["questions"], vectors, strict=True):
            seen.clear()
            self.embedding.next = vector
            started = time.perf_counter()
            answer = api.get(
                question,
                cache_obj=self.cache,
                hit_callback=lambda hits: seen.extend(score for _, score in hits),
            )
            seconds.append(time.perf_counter() - started)
            answers.append(answer)
            scores.append(max(seen) if seen else None)
        return {"answers": answers, "scores": scores, "seconds": seconds}

    def close(self, _: dict) -> dict:
        if self.cache is not None:
            self.cache.data_manager.close()  # writes faiss.index into the data dir
            self.cache = None
        return {}


def main() -> None:
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # the library's prints go to stderr; answers alone on the saved stdout
    sys.stdout = sys.stderr
    driver = Driver()
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        try:
            answer = {"ok": True} | getattr(driver, req["op"])(req)
        except Exception as error:  # report it; the caller decides
            answer = {"ok": False, "error": f"{type(error).__name__}: {error}"}
        out.write(json.dumps(answer) + "\n")
    driver.close({})


if __name__ == "__main__":
    main()
