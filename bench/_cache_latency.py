"""The cache benchmark's latency runs, its progress bars and its other-load meter.

Ours runs in this process (``Ours.lookup`` timed with perf_counter); GPTCache in its
driver process (``api.get`` timed there). Before each timed pass the meter waits for a
quiet machine, and it records the CPU that other processes used during the pass.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from _cache_data import Fill, synthetic_fill
from _cache_gptcache import GPTCacheDriver, SetupError
from _cache_ours import CountingEmbedder, Ours, blas_one_thread
from _cache_score import percentiles
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

DIM = 384
console = Console(stderr=True)


def progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


@contextmanager
def task(description: str, total: int) -> Iterator[Callable[[int], None]]:
    with progress() as bar:
        tid = bar.add_task(description, total=total)
        yield lambda n: bar.advance(tid, n)


# --------------------------------------------------------------------------- other load


class LoadMeter:
    """CPUs kept busy by processes other than this one and its children (the driver)."""

    def __init__(self) -> None:
        self.me = psutil.Process()

    def _ours(self) -> float:
        total = 0.0
        for p in [self.me, *self.me.children(recursive=True)]:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
        return total

    @staticmethod
    def _busy() -> float:
        t = psutil.cpu_times()
        return sum(t) - t.idle - getattr(t, "iowait", 0.0) - getattr(t, "steal", 0.0)

    @contextmanager
    def measure(self) -> Iterator[dict[str, float]]:
        out: dict[str, float] = {}
        busy0, ours0, t0 = self._busy(), self._ours(), time.monotonic()
        yield out
        wall = max(time.monotonic() - t0, 1e-6)
        out["other_load_cpus"] = max(0.0, (self._busy() - busy0) - (self._ours() - ours0)) / wall

    def wait_quiet(self, cpus: float, wait_s: float) -> float:
        deadline = time.monotonic() + wait_s
        while True:
            with self.measure() as m:
                time.sleep(1.0)
            if m["other_load_cpus"] <= cpus or time.monotonic() > deadline:
                return m["other_load_cpus"]
            console.print(
                f"    waiting for a quiet machine (other load {m['other_load_cpus']:.2f})"
            )
            time.sleep(3.0)


def timed_lookups(ours: Ours, fill: Fill, meter: LoadMeter) -> dict[str, Any]:
    seconds, hits = [], 0
    gc.collect()
    with meter.measure() as load:
        for text, vec in zip(fill.query_texts, fill.query_vecs, strict=True):
            t0 = time.perf_counter()
            answer, _ = ours.lookup(text, vec)
            seconds.append(time.perf_counter() - t0)
            hits += answer is not None
    return percentiles(seconds) | {"hits": hits} | load


def measure_ours(
    store: str, fill: Fill, args: argparse.Namespace, meter: LoadMeter, scratch: Path
) -> dict[str, dict[str, Any]]:
    """Rows for ``ours (<store>)`` as shipped and, in memory, with BLAS on one thread."""
    embedder = CountingEmbedder()
    ours = Ours(store, embedder, scratch=scratch)
    name = "ours (in-memory store)" if store == "memory" else "ours (Chroma store)"
    try:
        size = len(fill.texts)
        answers = [f"answer {i}" for i in range(size)]
        started = time.perf_counter()
        with task(f"  {name}: storing {size:,}", size) as advance:
            ours.fill(fill.texts, answers, fill.vectors, advance)
        fill_s = time.perf_counter() - started
        for text, vec in zip(fill.query_texts[:50], fill.query_vecs[:50], strict=True):
            ours.lookup(text + " (warm-up)", vec)
        meter.wait_quiet(args.quiet_cpus, args.quiet_wait)
        rows = {name: timed_lookups(ours, fill, meter)}
        if store == "memory":
            with blas_one_thread():
                meter.wait_quiet(args.quiet_cpus, args.quiet_wait)
                rows[f"{name[:-1]}, BLAS on 1 thread)"] = timed_lookups(ours, fill, meter)
        # the public store() at this size, LRU bound on: what one more entry costs
        extra = args.store_samples
        more = [f"late entry {size}-{i}: {t}" for i, t in enumerate(fill.query_texts[:extra])]
        stores = ours.timed_stores(more, fill.query_vecs[:extra])
        for row in rows.values():
            row |= {
                "insert_s": fill_s,
                "store_p50_ms": float(np.percentile(stores, 50) * 1000),
                "store_p99_ms": float(np.percentile(stores, 99) * 1000),
                "embedder_calls": embedder.calls,
            }
        return rows
    finally:
        ours.close()


def measure_gptcache(
    driver: GPTCacheDriver, fill: Fill, default: float, args: argparse.Namespace, meter: LoadMeter
) -> dict[str, Any]:
    size = len(fill.texts)
    driver.open(f"latency-{size}", DIM, size, default)
    insert_s = 0.0
    with task(f"  GPTCache: storing {size:,}", size) as advance:
        for i in range(0, size, 5000):
            n = min(5000, size - i)
            answers = [f"answer {j}" for j in range(i, i + n)]
            insert_s += driver.insert(fill.texts[i : i + n], answers, fill.vectors[i : i + n])
            advance(n)
    driver.query([t + " (warm-up)" for t in fill.query_texts[:50]], fill.query_vecs[:50], default)
    meter.wait_quiet(args.quiet_cpus, args.quiet_wait)
    with meter.measure() as load:
        res = driver.query(fill.query_texts, fill.query_vecs, default)
    driver.call("close")
    hits = sum(a is not None for a in res["answers"])
    return percentiles(res["seconds"]) | {"hits": hits, "insert_s": insert_s} | load


def latency(
    args: argparse.Namespace,
    real_texts: list[str],
    real: np.ndarray,
    driver: GPTCacheDriver | None,
    gpt_default: float,
    scratch: Path,
    ours_missing: str | None,
) -> dict[str, Any]:
    meter = LoadMeter()
    results: dict[str, dict[str, Any]] = {}
    systems = ["GPTCache (sqlite + faiss)", "ours (in-memory store)", "ours (Chroma store)"]
    if args.no_chroma:
        systems.pop()
    if ours_missing:  # said once, in not_run
        systems = systems[:1]
    for size in args.sizes:
        fill = synthetic_fill(real_texts, real, size, args.queries)
        console.print(f"[bold]latency at {size:,} entries[/] ({args.queries} lookups each)")
        for system in systems:
            rows: dict[str, dict[str, Any]]
            try:
                if system.startswith("GPTCache"):
                    if driver is None:
                        raise SetupError("GPTCache is not installed")
                    rows = {system: measure_gptcache(driver, fill, gpt_default, args, meter)}
                else:
                    store = "chroma" if "Chroma" in system else "memory"
                    rows = measure_ours(store, fill, args, meter, scratch)
            except Exception as error:  # one system failing must not lose the others
                rows = {system: {"error": f"{type(error).__name__}: {error}"}}
                console.print(f"    {system}: [red]{rows[system]['error']}[/]")
            for name, row in rows.items():
                if "p99_ms" in row:
                    console.print(
                        f"    {name}: p50 {row['p50_ms']:.3f} ms, "
                        f"p99 {row['p99_ms']:.3f} ms, hits {row['hits']}/{row['n']}, "
                        f"other load {row['other_load_cpus']:.2f} CPUs"
                    )
                results.setdefault(name, {})[str(size)] = row
        del fill
        gc.collect()
    return {"results": results, "queries": args.queries}
