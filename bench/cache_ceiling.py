"""How far the semantic cache's knobs go on GPTCache's own benchmark: an upper bound.

    .venv/bin/python bench/cache_ceiling.py [--limit N]

``bench/cache_quality.py`` measures our cache at its defaults against GPTCache. This asks
another question: with every knob tuned *on the benchmark data itself* — the threshold, the
margin the best candidate must lead by, the weight of shared words in the ranking, the
second check on or off — what is the best hit rate our decision rule reaches at precision
>= 0.97 on GPTCache's mock data (the hit-rate goal: at least GPTCache's at its default)?
Tuning on the data one reports is what a benchmark must never do; here it is the point: no
choice of knobs does better than this, so a shortfall below it is the rule's, not the
defaults'. The knobs that win on the mock data are then run on the MRPC and STS-B test
splits, where non-paraphrases must miss, to show what they would cost there.

Every set is stored in one real ``SemanticCache`` (in-memory vector store, precomputed
all-MiniLM-L6-v2 vectors, as in cache_quality) and every query is looked up once, through
``lookup``, with a cache that records the candidates its semantic tier hands to its
decision rule (the ``top_k`` nearest of the scope) and the exact tier's hits. Each grid
point then runs the cache's own rule (``SemanticCache._choose``) over those candidates,
with the second check's verdicts memoised (it is a pure function of the two texts). The
default point is checked against real lookups at the defaults: they must agree on every
query, or the script stops.

Writes bench/results/cache_ceiling.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from _cache_data import Dataset, embedded_datasets
from _cache_latency import task
from _cache_ours import CountingEmbedder, Ours, blas_one_thread
from _cache_report import PRECISION_GOAL
from _cache_score import score
from _provenance import machine, ours_version

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
THRESHOLDS = [round(float(t), 3) for t in np.arange(0.30, 0.951, 0.01)]
MARGINS = [0.0, 0.002, 0.005, 0.01, 0.015, 0.02, 0.03]
LEXICAL_WEIGHTS = [0.0, 0.05, 0.1, 0.2, 0.3]
FLOOR = 0.01  # the lowest lookup threshold: the semantic tier hands over its candidates


class Memo:
    """A verifier that remembers its inner verifier's verdict on each pair of texts."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.verdicts: dict[tuple[str, str], str | None] = {}

    def reject(self, query: str, cached: str) -> str | None:
        key = (query, cached)
        if key not in self.verdicts:
            self.verdicts[key] = self.inner.reject(query, cached)
        return self.verdicts[key]


class Lookups:
    """One cache holding a set; each query's exact hit or semantic candidates, recorded."""

    def __init__(self, ds: Dataset) -> None:
        from cache import SemanticCache

        class Recording(SemanticCache):
            def _choose(self, question: str, candidates: Sequence[Any], threshold: float) -> Any:
                self.seen = (question, list(candidates))
                return super()._choose(question, candidates, threshold)

        self.ds = ds
        self.ours = Ours("memory", CountingEmbedder(), cache_class=Recording)  # its defaults
        self.cache: Any = self.ours.cache
        self.defaults = {
            "threshold": self.cache.threshold,
            "margin": self.cache.margin,
            "lexical_weight": self.cache.lexical_weight,
        }
        self.verifier = Memo(self.cache.verifier)
        self.cache.verifier = self.verifier
        with blas_one_thread():
            self.ours.store(ds.stored, ds.answers, ds.stored_vecs)
            self.default_answers = [self._lookup(i, None)[0] for i in range(len(ds.queries))]
            # per query: ("exact", answer) or ("semantic", candidates)
            self.recorded = [self._record(i) for i in range(len(ds.queries))]

    def _lookup(self, i: int, threshold: float | None) -> tuple[str | None, float | None]:
        self.cache.seen = None
        return self.ours.lookup(self.ds.queries[i], self.ds.query_vecs[i], threshold)

    def _record(self, i: int) -> tuple[str, Any]:
        answer = self._lookup(i, FLOOR)[0]
        if self.cache.seen is None:
            if answer is not None:  # answered without the rule: the exact tier
                return "exact", answer
            return "semantic", []  # nothing stored near it
        return "semantic", self.cache.seen[1]

    def answers(
        self, threshold: float, margin: float, lexical_weight: float, check: bool
    ) -> list[str | None]:
        """Every query's answer with these knobs, by the cache's own rule."""
        cache = self.cache
        cache.margin, cache.lexical_weight = margin, lexical_weight
        cache.verifier = self.verifier if check else None
        out: list[str | None] = []
        for query, (tier, got) in zip(self.ds.queries, self.recorded, strict=True):
            if tier == "exact":
                out.append(got)
                continue
            hit = cache._choose(query, got, threshold) if got else None
            out.append(None if hit is None else hit.answer)
        return out

    def close(self) -> None:
        self.ours.close()


def sweep(lookups: Lookups, check: bool, progress: Any) -> list[dict[str, Any]]:
    rows = []
    for margin in MARGINS:
        for weight in LEXICAL_WEIGHTS:
            for t in THRESHOLDS:
                answers = lookups.answers(t, margin, weight, check)
                knobs = {"threshold": t, "margin": margin, "lexical_weight": weight}
                rows.append(knobs | {"second_check": check} | score(lookups.ds, answers))
                progress(1)
    return rows


def top_ranked(lookups: Lookups, weight: float) -> int:
    """Paraphrase queries whose best-ranked candidate (no threshold, margin or check) is
    their own entry: the most a rule that answers with its best candidate gets right."""
    answers = lookups.answers(FLOOR, 0.0, weight, False)
    return score(lookups.ds, answers)["correct"]


def strictest_best(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The most right hits at precision >= the goal; among settings that tie, the highest
    threshold and margin (the same answers here, fewer false hits elsewhere)."""
    ok = [r for r in rows if r["precision"] is not None and r["precision"] >= PRECISION_GOAL]
    key = ("correct", "precision", "threshold", "margin")
    return max(ok, key=lambda r: tuple(r[k] for k in key)) if ok else None


def frontier(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The settings no other beats on both counts (more right hits, fewer wrong ones), by
    right hits: the precision / hit-rate trade-off the knobs offer."""
    best: dict[int, dict[str, Any]] = {}
    for row in rows:
        if row["correct"] not in best or row["wrong"] < best[row["correct"]]["wrong"]:
            best[row["correct"]] = row
    kept, fewest = [], None
    for correct in sorted(best, reverse=True):
        row = best[correct]
        if fewest is None or row["wrong"] < fewest:
            kept.append(summary(row))
            fewest = row["wrong"]
    return kept[::-1]


def knobs_of(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("threshold", "margin", "lexical_weight", "second_check")}


def summary(row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    keep = ("correct", "wrong", "misses", "precision", "hit_rate", "false_hit_rate")
    return knobs_of(row) | {k: row[k] for k in keep}


def gptcache_default(results: Path) -> dict[str, Any] | None:
    """GPTCache's default row on the mock data from the last cache_quality run, if any."""
    path = results / "cache_quality.json"
    if not path.exists():
        return None
    report = json.loads(path.read_text())
    row = report["quality"].get("GPTCache mock data", {}).get("rows", {})
    found = row.get("GPTCache (default)")
    return None if found is None else found | {"from": str(path.relative_to(BENCH.parent))}


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Semantic cache: how far the knobs go on GPTCache's mock data",
        "",
        f"Command: `{report['command']}`  ",
        f"Machine: {report['machine']}. Ours: {report['ours']}.",
        "",
        f"Grid: {report['grid']}. Every point runs the cache's own decision rule over the "
        "candidates real lookups recorded; the default point matched real lookups on every "
        "query of every set. Tuned on the data it is scored on: an upper bound, not a score.",
        "",
        "| on the mock data | threshold | margin | lexical weight | correct | wrong | "
        "precision | hit rate |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, row in report["mock"].items():
        if row is None:
            lines.append(
                f"| {label} | — | — | — | — | — | — | none reaches precision {PRECISION_GOAL} |"
            )
            continue
        lines.append(
            f"| {label} | {row.get('threshold', '—')} | {row.get('margin', '—')} | "
            f"{row.get('lexical_weight', '—')} | {row['correct']} | {row['wrong']} | "
            f"{row['precision']:.3f} | {row['hit_rate']:.3f} |"
        )
    lines += [
        "",
        "Top-ranked candidate right (no threshold, margin or second check), by "
        "lexical weight: "
        + ", ".join(f"{w}: {n}" for w, n in report["top_ranked"].items())
        + f" of "
        f"{report['paraphrase_queries']}.",
        "",
    ]
    lines += [
        "The best knobs with the second check on, on the other sets (must-miss "
        "queries: non-paraphrases):",
        "",
        "| set | knobs | correct | wrong | precision | hit rate | false-hit rate |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, rows in report["elsewhere"].items():
        for label, row in rows.items():
            lines.append(
                f"| {name} | {label} | {row['correct']} | {row['wrong']} | "
                f"{row['precision']:.3f} | {row['hit_rate']:.3f} | {row['false_hit_rate']:.3f} |"
            )
    lines += ["", report["conclusion"], ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="pairs per data set")
    parser.add_argument("--output", type=Path, default=RESULTS, help="results directory")
    args = parser.parse_args()
    started = time.time()
    datasets, _ = embedded_datasets(args.limit, task)
    source = ours_version()

    lookups = {ds.name: Lookups(ds) for ds in datasets}
    defaults = next(iter(lookups.values())).defaults
    for name, lk in lookups.items():
        replayed = lk.answers(**defaults, check=True)
        if replayed != lk.default_answers:
            diff = sum(a != b for a, b in zip(replayed, lk.default_answers, strict=True))
            sys.exit(f"{name}: the replayed rule disagrees with real lookups on {diff} queries")

    mock = lookups[datasets[0].name]
    points = 2 * len(MARGINS) * len(LEXICAL_WEIGHTS) * len(THRESHOLDS)
    with task(f"{points} knob settings x {len(mock.ds.queries)} queries", points) as advance:
        on, off = sweep(mock, True, advance), sweep(mock, False, advance)
    default_row = knobs_of({**defaults, "second_check": True}) | score(
        mock.ds, mock.default_answers
    )
    best_on, best_off = (
        strictest_best(on),
        strictest_best(off),
    )
    gpt = None if args.limit else gptcache_default(RESULTS)  # full sets only
    table: dict[str, Any] = {"ours at its defaults": summary(default_row)}
    table[f"ours, best at precision >= {PRECISION_GOAL}, second check on"] = summary(best_on)
    table[f"ours, best at precision >= {PRECISION_GOAL}, second check off"] = summary(best_off)
    if gpt:
        table["GPTCache at its default (cache_quality.json)"] = {
            k: gpt[k] for k in ("threshold", "correct", "wrong", "precision", "hit_rate")
        }
    elsewhere: dict[str, Any] = {}
    for ds in datasets[1:]:
        lk, rows = lookups[ds.name], {}
        rows["defaults"] = score(ds, lk.default_answers)
        if best_on:
            knobs = {k: best_on[k] for k in ("threshold", "margin", "lexical_weight")}
            label = ", ".join(f"{k} {v}" for k, v in knobs.items())
            rows[label] = score(ds, lk.answers(**knobs, check=True))
        elsewhere[ds.name] = rows
    goal_hits = gpt["correct"] if gpt else None
    reached = bool(best_on and goal_hits is not None and best_on["correct"] >= goal_hits)
    conclusion = (
        f"With the second check on, the best any knobs reach at precision >= {PRECISION_GOAL} "
        f"is {best_on['correct'] if best_on else 0} right hits"
    )
    if goal_hits is None:
        conclusion += " (no full cache_quality run of GPTCache to compare with)."
    elif reached:
        conclusion += f", GPTCache's default {goal_hits}: the goal is within the rule's reach."
    else:
        conclusion += (
            f", GPTCache's default {goal_hits}: the hit-rate goal is out of the rule's reach "
            "on this data, whatever the knobs."
        )
    report = {
        "command": " ".join([".venv/bin/python bench/cache_ceiling.py", *sys.argv[1:]]),
        "machine": machine(),
        "ours": source,
        "grid": f"threshold {THRESHOLDS[0]}-{THRESHOLDS[-1]} step 0.01, margin {MARGINS}, "
        f"lexical weight {LEXICAL_WEIGHTS}, second check on and off",
        "paraphrase_queries": mock.ds.positives,
        "mock": table,
        "top_ranked": {str(w): top_ranked(mock, w) for w in LEXICAL_WEIGHTS},
        "elsewhere": elsewhere,
        "conclusion": conclusion,
        "frontiers": {"second check on": frontier(on), "second check off": frontier(off)},
        "wall_s": round(time.time() - started, 1),
    }
    for lk in lookups.values():
        lk.close()
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "cache_ceiling.json").write_text(json.dumps(report, indent=1))
    (args.output / "cache_ceiling.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
