"""The semantic cache with the trained pair verifier and the error bound: quality and latency.

    python bench/cache_verifier.py                  # ~10 min on 2 busy cores
    python bench/cache_verifier.py --quick          # 300 pairs a set, 1k entries

Quality: the protocol of ``bench/cache_quality.py`` (``bench/_cache_data.py``: all pairs of a
set in one cache, every query tried as a new user would) on GPTCache's mock data, MRPC test
and STS-B test, for our cache with the lexical rules only, with the pair verifier, with the
verifier and a ``max_error`` bound, and with the bound plus feedback (every wrong hit
reported through ``SemanticCache.feedback``, as ``/v1/feedback`` with a low score does: the
entry is evicted and the project's estimates move). The verifier never saw these test
splits nor GPTCache's data (``cache/_train_data.py``). GPTCache's own rows are copied from
``bench/results/cache_quality.json`` (same data, same protocol, not rerun here: its venv is
not built in this run).

Latency: one lookup (a precomputed query vector: embedding excluded) at 1k and 10k entries
(``--sizes``), rules only and with the verifier, and the verifier's forward pass alone on 1
and 4 pairs. The verifier runs on ``--threads`` CPU threads.

Writes ``bench/results/cache_verifier.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from _cache_data import Dataset, embedded_datasets, synthetic_fill
from _cache_ours import Ours
from _cache_score import percentiles, score

RESULTS = Path(__file__).resolve().parent / "results"
BOUNDS = (0.1, 0.05)


class MemoScorer:
    """The pair verifier with a memory of the pairs it scored: the quality runs ask the
    same pairs under several configurations (one forward pass per new batch)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.artefact = inner.artefact
        self.memo: dict[tuple[str, str], float] = {}
        self.passes = 0

    def same(self, query: str, candidates: Sequence[str]) -> list[float]:
        todo = [c for c in candidates if (query, c) not in self.memo]
        if todo:
            self.passes += 1
            scores = self.inner.same(query, todo)
            self.memo.update(((query, c), s) for c, s in zip(todo, scores, strict=True))
        return [self.memo[(query, c)] for c in candidates]


@contextmanager
def _task(description: str, total: int) -> Any:
    print(f"{description} ({total})", file=sys.stderr, flush=True)
    yield lambda n: None


def configurations(
    scorer: MemoScorer, bounds: Sequence[float] = BOUNDS
) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(name, SemanticCache options, lookup options); a fresh bound for each."""
    from cache import ErrorBound, ErrorCurve

    def bound() -> ErrorBound:
        return ErrorBound(ErrorCurve.from_dict(scorer.artefact.calibration))

    rows: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
        ("rules only (t=0.8)", {}, {}),
        ("rules + verifier (t=0.8)", {"pair_verifier": scorer}, {}),
        ("rules + verifier (t=0.7)", {"pair_verifier": scorer, "threshold": 0.7}, {}),
    ]
    for max_error in bounds:
        rows.append(
            (
                f"rules + verifier + max_error {max_error} (t=0.7)",
                {"pair_verifier": scorer, "error_bound": bound(), "threshold": 0.7},
                {"max_error": max_error},
            )
        )
    rows.append(
        (
            f"... + feedback on every wrong hit, max_error {bounds[-1]} (t=0.7)",
            {"pair_verifier": scorer, "error_bound": bound(), "threshold": 0.7},
            {"max_error": bounds[-1], "feedback": True},
        )
    )
    return rows


def run_quality(ds: Dataset, options: dict[str, Any], lookup: dict[str, Any]) -> dict[str, Any]:
    lookup = dict(lookup)
    feedback = lookup.pop("feedback", False)
    ours = Ours("memory", **options)
    try:
        ours.fill(ds.stored, ds.answers, ds.stored_vecs)
        answers: list[str | None] = []
        reported = 0
        for i, (text, vector) in enumerate(zip(ds.queries, ds.query_vecs, strict=True)):
            hit = ours.cache.lookup(
                ours.partition, text, embedding=vector, request_id=f"q{i}", **lookup
            )
            answer = hit.answer if hit is not None else None
            answers.append(answer)
            if feedback and answer is not None and answer not in ds.accept[i]:
                reported += ours.cache.feedback(1, f"q{i}")
        row = score(ds, answers)
        stats = ours.cache.bound_stats(1)
        if stats is not None:
            row["bound_hits"] = stats.hits
            row["mean_estimated_error"] = round(stats.estimated_error, 4)
        if feedback:
            row["feedback_evictions"] = reported
        return row
    finally:
        ours.close()


def quality(datasets: list[Dataset], scorer: MemoScorer, bounds: Sequence[float]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for ds in datasets:
        rows = {}
        for name, options, lookup in configurations(scorer, bounds):
            started = time.perf_counter()
            rows[name] = run_quality(ds, options, lookup) | {
                "seconds": round(time.perf_counter() - started, 1)
            }
            print(f"  {ds.name}: {name}: {_line(rows[name])}", file=sys.stderr, flush=True)
        out[ds.name] = {
            "rule": ds.rule,
            "stored": len(ds.stored),
            "paraphrase_queries": ds.positives,
            "must_miss_queries": ds.negatives,
            "rows": rows,
        }
    return out


def latency(
    datasets: list[Dataset], verifier: Any, sizes: Sequence[int], queries: int
) -> dict[str, Any]:
    real_texts = [t for ds in datasets for t in ds.stored]
    real = np.concatenate([ds.stored_vecs for ds in datasets])
    out: dict[str, Any] = {}
    pairs = [(ds.queries[i], ds.stored[ds.pair[i]]) for ds in datasets[:1] for i in range(4)]
    for n in (1, 4):
        seconds = []
        for _ in range(60):
            t0 = time.perf_counter()
            verifier.score_pairs(pairs[:n])
            seconds.append(time.perf_counter() - t0)
        out[f"verifier forward pass, {n} pair(s)"] = percentiles(seconds[10:])
    for size in sizes:
        fill = synthetic_fill(real_texts, real, size, queries)
        for name, options in (
            ("rules only", {}),
            ("rules + verifier", {"pair_verifier": verifier}),
        ):
            ours = Ours("memory", **options)
            try:
                ours.fill(fill.texts, [str(i) for i in range(size)], fill.vectors)
                seconds, hits = [], 0
                for text, vector in zip(fill.query_texts, fill.query_vecs, strict=True):
                    t0 = time.perf_counter()
                    hit = ours.cache.lookup(ours.partition, text, embedding=vector)
                    seconds.append(time.perf_counter() - t0)
                    hits += hit is not None
                out[f"{name}, {size:,} entries"] = percentiles(seconds) | {"hits": hits}
            finally:
                ours.close()
            print(f"  latency {name} {size:,}: {out[f'{name}, {size:,} entries']}", file=sys.stderr)
    return out


def _line(row: dict[str, Any]) -> str:
    def f(x: float | None) -> str:
        return "-" if x is None else f"{x:.3f}"

    return (
        f"hits {row['hits']} correct {row['correct']} wrong {row['wrong']} "
        f"precision {f(row['precision'])} hit rate {f(row['hit_rate'])} "
        f"false-hit rate {f(row['false_hit_rate'])}"
    )


def gptcache_reference() -> dict[str, dict[str, Any]]:
    path = RESULTS / "cache_quality.json"
    if not path.is_file():
        return {}
    quality = json.loads(path.read_text())["quality"]
    return {
        name: {k: v for k, v in data["rows"].items() if k.startswith("GPTCache")}
        for name, data in quality.items()
    }


def markdown(result: dict[str, Any]) -> str:
    def f(x: float | None) -> str:
        return "-" if x is None else f"{x:.3f}"

    lines = [
        "# Semantic cache: the trained pair verifier and the error bound",
        "",
        f"`{result['command']}` on {result['machine']}; verifier: {result['verifier']}.",
        "",
    ]
    head = (
        "| system | hits | correct | wrong (other entry / false hit elsewhere / own pair) "
        "| misses | precision | precision, own pair | hit rate | false-hit rate |"
    )
    for name, data in result["quality"].items():
        lines += [f"## {name}", "", data["rule"], "", head, "|---" * 9 + "|"]
        rows = dict(data["rows"])
        rows |= {f"{k} [copied, not rerun]": v for k, v in result["gptcache"].get(name, {}).items()}
        for system, row in rows.items():
            if "hits" not in row:
                continue
            own = row.get("false_hits_on_own_pair", 0)
            elsewhere = row.get("false_hits", 0) - own
            judged = row["correct"] + own
            lines.append(
                f"| {system} | {row['hits']} | {row['correct']} | {row['wrong']} "
                f"({row.get('wrong_entry', 0)} / {elsewhere} / {own}) | {row['misses']} | "
                f"{f(row['precision'])} | {f(row['correct'] / judged if judged else None)} | "
                f"{f(row['hit_rate'])} | {f(row['false_hit_rate'])} |"
            )
        lines.append("")
    lines += [
        "## Lookup latency (embedding excluded)",
        "",
        "| what | p50 ms | p99 ms | mean ms | n |",
        "|---|---|---|---|---|",
    ]
    for name, row in result["latency"].items():
        lines.append(
            f"| {name} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | {row['mean_ms']:.2f} | "
            f"{row['n']} |"
        )
    load = result.get("load_average_1min", {})
    lines += [
        "",
        f"Load average (1 min) on the machine around the latency runs: {load} — other "
        "work shared the 2 cores, so tail latencies are contention, not the cache.",
        "",
        *[f"- {note}" for note in result["notes"]],
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sizes", type=int, nargs="*", default=[1_000, 10_000])
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument("--bounds", type=float, nargs="+", default=list(BOUNDS))
    parser.add_argument(
        "--latency-only", action="store_true", help="keep the quality of the last results"
    )
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from cache import PairVerifier

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    limit = 300 if args.quick else None
    datasets, _ = embedded_datasets(limit, _task)
    verifier = PairVerifier(threads=args.threads)
    verifier.warm()
    scorer = MemoScorer(verifier)
    result: dict[str, Any] = {
        "command": " ".join(["python bench/cache_verifier.py", *sys.argv[1:]])
        + (" (quality: kept from the last full run)" if args.latency_only else ""),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs "
        f"(shared with other work), {args.threads} torch thread(s)",
        "verifier": "cache/_verifier (LoRA r=8 on all-MiniLM-L6-v2 + head; "
        "see cache/_verifier/training.json)",
        "quality": _last_quality() if args.latency_only else quality(datasets, scorer, args.bounds),
        "gptcache": gptcache_reference(),
        "verifier_forward_passes": scorer.passes,
    }
    sizes = [1_000] if args.quick else args.sizes
    load_before = os.getloadavg()[0]
    result["latency"] = {} if args.no_latency else latency(datasets, verifier, sizes, args.queries)
    result["load_average_1min"] = {"before_latency": load_before, "after": os.getloadavg()[0]}
    result["notes"] = [
        "precision = correct / hits; hit rate = correct / paraphrase queries; false-hit rate "
        "= must-miss queries answered / must-miss queries (bench/_cache_score.py)",
        "GPTCache rows are copied from bench/results/cache_quality.json (same sets and "
        "protocol, GPTCache 0.1.x with its defaults), not rerun in this run",
        "no real-user duplicate-question set (Quora-style) could be installed here: none "
        "was found on the reachable package registries; not measured",
        "the verifier never read MRPC test, STS-B test or GPTCache's data "
        "(cache/_train_data.py); the bound's curve was fitted on MRPC/STS-B held-out pairs",
        "the feedback row evicts each wrong hit's entry (what /v1/feedback does), so an "
        "entry that was right for its own pair's later query is gone by then",
        "MRPC and STS-B test reuse near-identical sentences across pairs: a query that "
        "hits another pair's paraphrase of itself counts as wrong here (bench/_cache_score.py); "
        "'precision, own pair' = correct / (correct + false hits on the query's own pair): "
        "the paraphrase-or-not judgement alone, without those cross-pair hits",
        "latency: the in-memory vector store, one partition, precomputed query vectors; "
        "half the queries sit near an entry (hits, so the verifier runs), half far",
    ]
    result["wall_s"] = round(time.perf_counter() - started, 1)
    RESULTS.mkdir(exist_ok=True)
    _write(RESULTS / "cache_verifier.json", json.dumps(result, indent=1, default=str) + "\n")
    _write(RESULTS / "cache_verifier.md", markdown(result))
    print(markdown(result))


def _last_quality() -> dict[str, Any]:
    quality: dict[str, Any] = json.loads((RESULTS / "cache_verifier.json").read_text())["quality"]
    return quality


def _write(path: Path, text: str) -> None:
    temp = path.with_suffix(path.suffix + ".tmp")
    temp.write_text(text, encoding="utf-8")
    os.replace(temp, path)


if __name__ == "__main__":
    main()
