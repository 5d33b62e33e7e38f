"""Evaluation throughput and agreement with human judgements: our ``eval.run`` vs ragas's
own ``evaluate()``, side by side in one run, on the same rows, answers and metrics.

    .venv/bin/python bench/eval_throughput.py [--rows 200] [--concurrency 8] [--no-ragas]

Set-up (a temporary ``GENAI_HOME``): ``genai.init``, project ``bench`` with a developer key
and high quotas, and our gateway app served by uvicorn on 127.0.0.1 in a thread of this
process. Its deployment ``pubmedqa`` has one in-process target stage (``PubMedAnswerer``
below): it answers each PubMedQA question with the last two sentences of the question's
own abstract (an extractive answer, microseconds per request, no model), so the benchmark
measures the evaluation's overhead, not generation. Rows: the first N PubMedQA labelled
questions (ordered by PubMed id) with their long answers as references and their
``CONTEXTS`` as reference contexts.

- ours: ``eval.run`` through the gateway, ``concurrency`` requests at a time, with
  ``token_f1, rouge_l, bleu, exact_match`` (the text set) and, separately, those plus
  ``embedding_similarity`` (the bundled all-MiniLM-L6-v2). Each suite runs once fresh
  (``fresh=True``: every row asked upstream and scored) and then again identically (the
  eval's result cache: no upstream call, scores reused).
- ragas 0.4.3 in ``.venv-clients`` (bench/_ragas_eval_side.py, a subprocess): per run the
  openai SDK asks the same deployment through the same gateway, ``concurrency`` at a time,
  then ``ragas.evaluate()`` scores with ``RougeScore, BleuScore, ExactMatch`` (and
  ``NonLLMStringSimilarity`` when rapidfuzz is installed there). ragas has no result
  cache: its re-run is a full re-run, in the same (warm) process.

Both sides' wall times include answering; ragas's are also reported split into answering
and scoring. Imports (and ragas's process start) are not timed on either side.

Agreement with human judgements: no QA answer-rating set with human labels is reachable
offline here, so the judge-free metrics are checked on human-labelled similarity and
paraphrase sets: STS-B test (1,379 pairs, human similarity 0-5: Pearson and Spearman r)
and MRPC test (1,725 pairs, binary human paraphrase labels: point-biserial r), sentence 1
as the reference, sentence 2 as the answer, through the same metric classes ``eval.run``
uses.

Writes bench/results/eval_throughput.json and prints the markdown tables. Data is read
from ../shared/data (``--data``), never copied into the repository.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

from _provenance import ROOT, machine, ours_version, version
from rich.console import Console

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
DATA = ROOT.parent / "shared" / "data"
CLIENTS_PY = ROOT / ".venv-clients" / "bin" / "python"
PROJECT, DEPLOYMENT = "bench", "pubmedqa"
TEXT_METRICS = ["token_f1", "rouge_l", "bleu", "exact_match"]
ALL_METRICS = [*TEXT_METRICS, "embedding_similarity"]
console = Console(stderr=True)


# --------------------------------------------------------------------------- data


def pubmedqa_rows(data: Path, n: int) -> list[dict[str, Any]]:
    """The first ``n`` PubMedQA labelled questions by PubMed id: question, long answer,
    contexts."""
    raw = json.loads((data / "rag_qa" / "pubmedqa" / "ori_pqal.json").read_text())
    rows = []
    for pmid in sorted(raw, key=int)[:n]:
        item = raw[pmid]
        rows.append(
            {
                "id": pmid,
                "question": item["QUESTION"],
                "reference": item["LONG_ANSWER"],
                "reference_contexts": list(item["CONTEXTS"]),
            }
        )
    return rows


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


def extractive_answer(contexts: Sequence[str]) -> str:
    """The last two sentences of the abstract: what the deployment answers."""
    return " ".join(sentences(contexts[-1])[-2:]) if contexts else ""


def sts_pairs(data: Path) -> tuple[list[str], list[str], list[float]]:
    refs, outs, gold = [], [], []
    path = data / "paraphrase" / "stsbenchmark" / "sts-test.csv"
    for line in path.read_text(encoding="utf-8").splitlines():
        cols = line.split("\t")
        if len(cols) >= 7:
            gold.append(float(cols[4]))
            refs.append(cols[5])
            outs.append(cols[6])
    return refs, outs, gold


def mrpc_pairs(data: Path) -> tuple[list[str], list[str], list[float]]:
    refs, outs, gold = [], [], []
    path = data / "paraphrase" / "mrpc" / "msr_paraphrase_test.txt"
    for line in path.read_text(encoding="utf-8-sig").splitlines()[1:]:
        cols = line.split("\t")
        if len(cols) >= 5:
            gold.append(float(cols[0]))
            refs.append(cols[3])
            outs.append(cols[4])
    return refs, outs, gold


# --------------------------------------------------------------------------- platform


class PubMedAnswerer:
    """A gateway target stage answering each known question extractively (see the
    module's docstring); an unknown question gets an empty answer."""

    name = "pubmed-extractive"

    def __init__(self, rows: Sequence[dict[str, Any]]) -> None:
        self.answers = {r["question"]: extractive_answer(r["reference_contexts"]) for r in rows}
        self.calls = 0

    async def complete(self, request: Any, target: Any) -> dict[str, Any]:
        self.calls += 1
        question = request.body["messages"][-1]["content"]
        text = self.answers.get(question, "")
        return {
            "id": f"pm-{self.calls}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": DEPLOYMENT,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": len(question.split()),
                "completion_tokens": len(text.split()),
                "total_tokens": len(question.split()) + len(text.split()),
            },
        }

    async def stream(self, request: Any, target: Any) -> AsyncIterator[dict[str, Any]]:
        raise NotImplementedError("the benchmark's deployment does not stream")
        yield {}  # pragma: no cover


@contextlib.contextmanager
def serve_gateway(settings: Any, stage: PubMedAnswerer) -> Iterator[str]:
    """Our gateway app under uvicorn in a thread on a free loopback port: its /v1 URL."""
    import uvicorn

    from genai.gateway import GatewayOptions, Stages, create_gateway, create_gateway_app

    gw = create_gateway(
        settings,
        stages=Stages(targets={stage.name: stage}),
        options=GatewayOptions(ledger_interval_s=0.5),
    )
    app = create_gateway_app(gw, settings=settings)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not server.started:
            raise RuntimeError("the gateway did not start (see the log above)")
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()


def prepare(home: Path) -> tuple[Any, str]:
    """An initialised platform in ``home``: the admin's client and a developer key of the
    benchmark's project, whose deployment answers through :class:`PubMedAnswerer`."""
    import genai

    settings = genai.Settings(home=home, user="bench")
    genai.init(settings, admin="bench")
    client = genai.connect(settings)
    client.projects.create(PROJECT)
    key = client.keys.create(PROJECT, role="developer").secret
    client.quotas.set(PROJECT, requests_per_minute=10_000_000, tokens_per_day=10**12)
    spec = {"targets": [{"name": "pm", "backend": PubMedAnswerer.name}], "retries": 0}
    client.registry.deployments.create(PROJECT, DEPLOYMENT, spec=spec)
    return client, key


# --------------------------------------------------------------------------- ours


def suite_of(dataset: Path, metrics: list[str], name: str, concurrency: int) -> Any:
    import eval as ev

    return ev.load_suite(
        {
            "name": name,
            "dataset": str(dataset),
            "concurrency": concurrency,
            "max_retries": 0,
            "metrics": metrics,
        }
    )


def ours(client: Any, key: str, v1: str, suite: Any) -> dict[str, Any]:
    """One suite, fresh then re-run: wall time, rows/s, means, cache hits."""
    import eval as ev

    out: dict[str, Any] = {}
    for label, fresh in (("first", True), ("rerun", False)):
        started = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):  # eval's progress bar: stdout is the table
            job = ev.run(
                client, PROJECT, suite, target=DEPLOYMENT, gateway=v1, api_key=key,
                fresh=fresh, progress=True,
            )  # fmt: skip
        wall = time.perf_counter() - started
        failed = [r for r in job.results if r.answer.error is not None]
        if failed:
            raise RuntimeError(f"{len(failed)} rows failed, e.g. {failed[0].answer.error}")
        out[label] = {
            "wall_s": wall,
            "rows": len(job.results),
            "cached_answers": sum(r.answer.cached for r in job.results),
            "means": {m.label: job.summary.metrics[m.label].estimate.mean for m in suite.metrics},
        }
    return out


def embedder_load_s(settings: Any) -> float:
    """Seconds to build and load the bundled embedding model (each eval.run with
    embedding_similarity builds its own) and embed one text."""
    from genai.models import create_embedder

    started = time.perf_counter()
    create_embedder(settings).embed(["warm"])
    return time.perf_counter() - started


# --------------------------------------------------------------------------- ragas


def ragas_side(
    rows: list[dict[str, Any]], key: str, v1: str, work: Path, args: Any
) -> dict[str, Any]:
    if not CLIENTS_PY.exists():
        raise RuntimeError(
            f"{CLIENTS_PY} is missing: create the clients venv (ragas 0.4.3) with `make clients`"
        )
    spec = {
        "base_url": v1,
        "api_key": key,
        "model": DEPLOYMENT,
        "concurrency": args.concurrency,
        "runs": 2,
        "rows": [
            {"question": r["question"], "reference": r["reference"],
             "contexts": r["reference_contexts"]}
            for r in rows
        ],
    }  # fmt: skip
    (work / "ragas-spec.json").write_text(json.dumps(spec))
    out = work / "ragas-out.json"
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    done = subprocess.run(
        [str(CLIENTS_PY), str(BENCH / "_ragas_eval_side.py"), str(work / "ragas-spec.json"),
         str(out)],
        check=False, capture_output=True, text=True, env=env, timeout=3600,
    )  # fmt: skip
    if done.returncode:
        raise RuntimeError(f"the ragas side failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.read_text())
    result["first"], result["rerun"] = result.pop("runs")
    return result


def summary(rounds: list[dict[str, Any]], rows: int) -> dict[str, Any]:
    """The median over rounds of each run's times, with rows/s and re-run / first."""
    out: dict[str, Any] = {}
    for label in ("first", "rerun"):
        runs = [r[label] for r in rounds]
        med = {
            k: statistics.median(run[k] for run in runs)
            for k in ("wall_s", "answer_s", "score_s")
            if k in runs[0]
        }
        med["rows_per_s"] = rows / med["wall_s"]
        med["wall_s_per_round"] = [run["wall_s"] for run in runs]
        med["means"] = runs[-1]["means"]
        out[label] = med
    out["rerun_over_first"] = out["rerun"]["wall_s"] / out["first"]["wall_s"]
    return out


# --------------------------------------------------------------------------- agreement


def scores_of(
    refs: Sequence[str], outs: Sequence[str], metrics: Sequence[str]
) -> dict[str, list[float | None]]:
    """Each metric's score of every (reference, answer) pair, by the classes eval.run uses."""
    from eval import METRICS, Answer, EvalRow, Message
    from eval._scoring import score_all

    built = [METRICS.create(m) for m in metrics]

    async def go() -> list[dict[str, Any]]:
        gate = asyncio.Semaphore(8)

        async def one(i: int) -> dict[str, Any]:
            row = EvalRow(
                index=i, id=str(i), messages=(Message(role="user", content="-"),),
                reference=refs[i],
            )  # fmt: skip
            async with gate:
                return await score_all(built, row, Answer(output=outs[i]))

        return await asyncio.gather(*(one(i) for i in range(len(refs))))

    values = asyncio.run(go())
    return {m: [v[m].value for v in values] for m in metrics}


def agreement(data: Path) -> dict[str, Any]:
    from scipy.stats import pearsonr, spearmanr

    out: dict[str, Any] = {}
    sets = {
        "sts-b test": (sts_pairs, "human similarity 0-5", "pearson"),
        "mrpc test": (mrpc_pairs, "human paraphrase label 0/1", "point-biserial"),
    }
    for name, (load, labels, kind) in sets.items():
        refs, outs, gold = load(data)
        with console.status(f"scoring {len(refs)} {name} pairs"):
            scores = scores_of(refs, outs, ALL_METRICS)
        per: dict[str, Any] = {}
        for metric, vals in scores.items():
            keep = [(v, g) for v, g in zip(vals, gold, strict=True) if v is not None]
            xs, ys = [v for v, _ in keep], [g for _, g in keep]
            per[metric] = {
                "r": float(pearsonr(xs, ys).statistic),
                "spearman": float(spearmanr(xs, ys).statistic),
                "n": len(keep),
            }
        out[name] = {"pairs": len(refs), "labels": labels, "r_kind": kind, "metrics": per}
    return out


# --------------------------------------------------------------------------- report

SETUPS = {
    "ours_text": "ours eval.run, text metrics",
    "ours_all": "ours eval.run, text + embedding",
    "ragas": "ragas evaluate(), non-LLM metrics",
}


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"Eval throughput: {report['rows']} PubMedQA rows, concurrency {report['concurrency']},"
        f" median of {report['rounds']} rounds; wall time includes answering through the "
        "gateway on both sides",
        "",
        "| setup | metrics | first run | rows/s | re-run | rows/s | re-run / first |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, name in SETUPS.items():
        r = report["results"].get(key)
        if r is None:
            continue
        metrics = ", ".join(r["first"]["means"])
        f, a = r["first"], r["rerun"]
        lines.append(
            f"| {name} | {metrics} | {f['wall_s']:.2f} s | {f['rows_per_s']:.1f} | "
            f"{a['wall_s']:.2f} s | {a['rows_per_s']:.1f} | {r['rerun_over_first']:.1%} |"
        )
    rg = report["results"].get("ragas")
    lines.append("")
    if rg:
        lines.append(
            "ragas, median split: first run answering {:.2f} s + scoring {:.2f} s; re-run "
            "answering {:.2f} s + scoring {:.2f} s (ragas keeps no results: its re-run is a "
            "full run). ragas {}, untimed import {:.1f} s.".format(
                rg["first"]["answer_s"], rg["first"]["score_s"], rg["rerun"]["answer_s"],
                rg["rerun"]["score_s"], report["ragas_version"], report["ragas_import_s"],
            )
        )  # fmt: skip
    if "embedder_load_s" in report:
        lines.append(
            f"Loading the bundled embedding model (inside each first run with "
            f"embedding_similarity): {report['embedder_load_s']:.1f} s."
        )
    lines += ["", "Goals:"]
    lines += [f"- {key}: {text}" for key, text in report["goals"].items()]
    lines += ["", "Agreement with human judgements (judge-free metrics):", ""]
    lines += ["| set | labels | r | " + " | ".join(ALL_METRICS) + " |"]
    lines += ["|---|---|---|" + "---|" * len(ALL_METRICS)]
    for name, st in report["agreement"].items():
        cells = [f"{st['metrics'][m]['r']:.3f}" for m in ALL_METRICS]
        lines.append(f"| {name} ({st['pairs']} pairs) | {st['labels']} | {st['r_kind']} | "
                     + " | ".join(cells) + " |")  # fmt: skip
    lines += ["", report["agreement_note"]]
    return "\n".join(lines)


def goals(report: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    res, ratios = report["results"], report.setdefault("ratios", {})
    if "ragas" in res:
        for key in ("ours_text", "ours_all"):
            ratio = res[key]["first"]["rows_per_s"] / res["ragas"]["first"]["rows_per_s"]
            ratios[f"first_run_{key}_over_ragas"] = ratio
            out[f"first run >= 2x ragas's rows/s ({SETUPS[key]})"] = (
                f"{ratio:.2f}x ({'met' if ratio >= 2 else 'NOT met'})"
            )
        ratios["rerun_ours_text_over_ragas"] = (
            res["ours_text"]["rerun"]["rows_per_s"] / res["ragas"]["rerun"]["rows_per_s"]
        )
    for key in ("ours_text", "ours_all"):
        share = res[key]["rerun_over_first"]
        out[f"re-run <= 5% of the first run's time ({SETUPS[key]})"] = (
            f"{share:.1%} ({'met' if share <= 0.05 else 'NOT met'})"
        )
    sts = report["agreement"]["sts-b test"]["metrics"]
    best = max((m for m in sts if m != "token_f1"), key=lambda m: sts[m]["r"])
    beat = sts[best]["r"] > sts["token_f1"]["r"]
    out["a judge-free metric correlates with human labels better than token_f1 (STS-B)"] = (
        f"{best} r={sts[best]['r']:.3f} vs token_f1 r={sts['token_f1']['r']:.3f} "
        f"({'met' if beat else 'NOT met'})"
    )
    return out


# --------------------------------------------------------------------------- main


def warm_up(client: Any, key: str, v1: str, dataset: Path, args: Any) -> None:
    """Untimed: imports, the gateway's first requests, the registry's first writes."""
    import httpx

    for row in json.loads("[" + ",".join(dataset.read_text().splitlines()[:8]) + "]"):
        httpx.post(
            v1 + "/chat/completions",
            json={"model": DEPLOYMENT, "messages": [{"role": "user", "content": row["question"]}]},
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        ).raise_for_status()
    small = dataset.parent / "warmup.jsonl"
    small.write_text("\n".join(dataset.read_text().splitlines()[:8]) + "\n")
    import eval as ev

    suite = suite_of(small, TEXT_METRICS, "warmup", args.concurrency)
    ev.run(client, PROJECT, suite, target=DEPLOYMENT, gateway=v1, api_key=key, fresh=True)


def measure(rows: list[dict[str, Any]], args: Any, report: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory(prefix="eval-bench-") as tmp:
        work = Path(tmp)
        home = work / "genai-home"
        os.environ["GENAI_HOME"] = str(home)
        client, key = prepare(home)
        dataset = work / "pubmedqa.jsonl"
        dataset.write_text("".join(json.dumps(r) + "\n" for r in rows))
        stage = PubMedAnswerer(rows)
        suites = {
            "ours_text": suite_of(dataset, TEXT_METRICS, "pm-text", args.concurrency),
            "ours_all": suite_of(dataset, ALL_METRICS, "pm-all", args.concurrency),
        }
        rounds: dict[str, list[dict[str, Any]]] = {k: [] for k in SETUPS}
        with serve_gateway(client.settings, stage) as v1:
            warm_up(client, key, v1, dataset, args)
            order = ["ours_text", "ours_all"] + ([] if args.no_ragas else ["ragas"])
            for i in range(args.rounds):
                for setup in order[i % len(order) :] + order[: i % len(order)]:
                    console.print(f"round {i + 1}/{args.rounds}: [bold]{SETUPS[setup]}[/]")
                    if setup == "ragas":
                        with console.status("ragas: evaluate(), first run then re-run"):
                            got = ragas_side(rows, key, v1, work, args)
                        report["ragas_version"] = got["ragas"]
                        report["ragas_python"] = got["python"]
                        report["ragas_import_s"] = got["import_s"]
                        report["ragas_skipped"] = got["skipped"]
                    else:
                        got = ours(client, key, v1, suites[setup])
                    rounds[setup].append(got)
            report["upstream_calls"] = stage.calls
        if not args.no_embedder_load:
            report["embedder_load_s"] = embedder_load_s(client.settings)
        client.close()
    report["results"] = {k: summary(v, len(rows)) for k, v in rounds.items() if v}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200, help="PubMedQA rows (max 1000)")
    parser.add_argument("--concurrency", type=int, default=8, help="requests at a time, both")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (the median counts)")
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    parser.add_argument("--no-ragas", action="store_true", help="skip ragas's side")
    parser.add_argument("--no-embedder-load", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=RESULTS / "eval_throughput.json")
    args = parser.parse_args()

    rows = pubmedqa_rows(args.data, args.rows)
    report: dict[str, Any] = {
        "benchmark": "eval_throughput",
        "command": "python bench/eval_throughput.py " + " ".join(sys.argv[1:]),
        "machine": machine(),
        "load_average_at_start": os.getloadavg(),
        "ours": ours_version("eval", "genai"),
        "python": sys.version.split()[0],
        "rows": len(rows),
        "concurrency": args.concurrency,
        "rounds": args.rounds,
        "dataset": "PubMedQA labelled (pqa-l), first rows by PubMed id; reference = "
        "LONG_ANSWER, reference_contexts = CONTEXTS",
        "upstream": "our gateway (uvicorn in a thread of the bench process) with an "
        "in-process target stage answering the last two sentences of the question's "
        "abstract (extractive, no model)",
        "timing": "wall time of a whole run including answering every row through the "
        "gateway, median over rounds (order rotated each round); imports untimed; ragas's "
        "first run is the first in a fresh process, its re-run the second in the same one",
        "versions": {d: version(d) for d in ("openai", "sentence-transformers", "torch")},
        "llm_metric": "not run: an LLM metric on both sides through the gateway to one "
        "judge deployment is left for a later change",
    }
    measure(rows, args, report)
    report["agreement"] = agreement(args.data)
    report["agreement_note"] = (
        "STS-B and MRPC are human-labelled sentence similarity / paraphrase sets, not QA "
        "answer-rating sets: no QA answer-rating set with human labels is reachable offline "
        "here. Sentence 1 is the reference, sentence 2 the answer."
    )
    report["goals"] = goals(report)
    report["load_average_at_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(markdown(report))
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
