"""Fine-tuning throughput: ours (``finetune``) vs TRL's SFTTrainer vs a hand-written
transformers + PEFT loop, side by side in one run, on the CPU.

    .venv/bin/python bench/finetune_throughput.py [--quick] [--models tiny,smollm2]
        [--repeats N] [--threads 1] [--no-trl]

All three train LoRA r=8 (alpha 16, dropout 0) on every linear layer of the same base model
with the same seed (so the same initial adapter), fp32, no gradient checkpointing,
AdamW (``adamw_torch``) with the same learning rate and linear schedule, the same batch size,
gradient accumulation, max_length and number of steps, on the same rows in the same order
(``data_seed``), with the same loss: chat rows, assistant turns trained (the mask comes from
``finetune._tokens.Encoder``; TRL gets it as ``assistant_masks``, see
bench/_finetune_trl_driver.py), summed over the window's trained tokens and divided by
their count. The per-step losses of the three are compared to prove it.

- ours: ``finetune._trainer.train_local`` (transformers' Trainer, our collator and callbacks);
- TRL: ``trl.SFTTrainer`` 1.x in its own venv (bench/.venvs/trl, created when missing, with
  transformers, peft and accelerate pinned to the project venv's versions);
- hand: bench/_finetune_hand.py, the loop with nothing but the step.

Each trainer runs in its own worker process with the same number of torch threads. A run is
one fresh training of ``steps`` optimizer steps; the first ``warmup`` steps are not timed;
the clock is read at the end of every optimizer step. Training tokens/s = non-padding input
tokens of the timed steps / their wall time (the same rows, so the same tokens, for all
three); trained tokens/s counts the tokens with a loss. Each (trainer, mode) first runs once
untimed; then rounds run every configuration once, in a rotating order, and the median round
counts.

Datasets (bench/_finetune_data.py): ``uniform`` (answers of similar length) and ``skewed``
(lognormal lengths). On ``skewed`` ours and the hand loop run padded and packed, TRL with its
default (padded) and ``padding_free=True`` (the same technique as our packing: one row,
positions restarting, no attention mask).

Models: ``smollm2`` (SmolLM2-135M-Instruct, converted once into bench/.venvs/smollm2) and
``tiny`` (``genai.testing.tiny_model``, hidden 128, 2 layers: tens of milliseconds per step,
so it shows each framework's fixed cost per step). ``--quick`` runs ``tiny`` alone.

Writes bench/results/finetune_throughput.json, .md and .png, and prints the tables.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from _finetune_data import Shape, batch_plan, chat_rows, describe, encode, readme_prose
from _finetune_report import goals, markdown, notes, plot
from _finetune_trl import Driver, SetupError, ensure_venv, venv_versions
from _provenance import machine, ours_version, version
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
VENVS = BENCH / ".venvs"

#: the same for every trainer and model
COMMON: dict[str, Any] = {
    "rank": 8,
    "alpha": 16.0,
    "dropout": 0.0,
    "target_modules": "all-linear",
    "learning_rate": 2e-4,
    "lr_scheduler": "linear",
    "warmup_steps": 0,
    "weight_decay": 0.0,
    "max_grad_norm": 1.0,
    "seed": 0,
}
#: per model: batches, steps (the first `warmup` untimed), rounds, answer lengths
MODELS: dict[str, dict[str, Any]] = {
    "tiny": {
        "batch_size": 4,
        "gradient_accumulation": 2,
        "max_length": 1024,
        "steps": 12,
        "warmup": 2,
        "repeats": 5,
        "rows": 128,
        "uniform": Shape("uniform", low=24, high=40),
        "skewed": Shape("skewed", median=16, sigma=1.2, floor=4),
    },
    "smollm2": {
        "batch_size": 4,
        "gradient_accumulation": 1,
        "max_length": 512,
        "steps": 3,
        "warmup": 1,
        "repeats": 4,
        "rows": 128,
        "uniform": Shape("uniform", low=40, high=56),
        "skewed": Shape("skewed", median=24, sigma=1.1, floor=8),
    },
}
#: (trainer, mode) per dataset; ours and hand pad or pack, TRL pads or goes padding-free
CONFIGS = {
    "uniform": [("ours", "padding"), ("hand", "padding"), ("trl", "padding")],
    "skewed": [
        ("ours", "padding"),
        ("hand", "padding"),
        ("trl", "padding"),
        ("ours", "packing"),
        ("hand", "packing"),
        ("trl", "padding_free"),
    ],
}
#: the order of the report's rows
CANONICAL = [
    ("ours", "padding"),
    ("ours", "packing"),
    ("trl", "padding"),
    ("trl", "padding_free"),
    ("hand", "padding"),
    ("hand", "packing"),
]


class OtherLoad:
    """CPUs used by processes other than the worker while it trains."""

    def __init__(self, pid: int) -> None:
        self.worker = psutil.Process(pid)

    def _busy(self) -> float:
        t = psutil.cpu_times()
        return sum(t) - t.idle - getattr(t, "iowait", 0.0) - getattr(t, "steal", 0.0)

    def _worker(self) -> float:
        t = self.worker.cpu_times()
        return t.user + t.system + t.children_user + t.children_system

    def start(self) -> tuple[float, float, float]:
        return self._busy(), self._worker(), time.monotonic()

    def stop(self, mark: tuple[float, float, float]) -> float:
        busy, worker, t0 = mark
        wall = max(time.monotonic() - t0, 1e-6)
        return max(0.0, (self._busy() - busy) - (self._worker() - worker)) / wall


# --------------------------------------------------------------------------- set-up


def build_model(name: str, work: Path) -> Path:
    from genai.testing import smollm2_model, tiny_model

    if name == "tiny":
        return tiny_model(
            work / "tiny",
            hidden_size=128,
            num_layers=2,
            num_heads=4,
            vocab_size=512,
            context_window=1024,
            name="bench-llama",
        )
    if name == "smollm2":
        print("SmolLM2-135M-Instruct (converted once, kept in bench/.venvs)", file=sys.stderr)
        return smollm2_model(VENVS / "smollm2")
    raise SystemExit(f"unknown model {name!r}: use tiny, smollm2")


def build_data(name: str, model: Path, work: Path) -> dict[str, Any]:
    """Per dataset: the rows' JSON file, their statistics and the batches of the steps."""
    import torch
    from transformers import AutoTokenizer

    spec = MODELS[name]
    tokenizer = AutoTokenizer.from_pretrained(model)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    out: dict[str, Any] = {"pad_id": int(pad or 0), "datasets": {}}
    for kind in ("uniform", "skewed"):
        raw = chat_rows(tokenizer, spec[kind], spec["rows"], COMMON["seed"], spec["max_length"])
        rows = encode(tokenizer, raw, spec["max_length"])
        path = work / f"{name}-{kind}.json"
        path.write_text(json.dumps(rows))
        order = torch.randperm(
            len(rows), generator=torch.Generator().manual_seed(COMMON["seed"])
        ).tolist()
        plan = batch_plan(
            rows, order, spec["batch_size"], spec["gradient_accumulation"], spec["steps"]
        )
        out["datasets"][kind] = {"path": str(path), "stats": describe(rows), "plan": plan}
    return out


def settings(name: str, steps: int | None = None) -> dict[str, Any]:
    spec = MODELS[name]
    keys = ("batch_size", "gradient_accumulation", "max_length", "steps")
    return COMMON | {k: spec[k] for k in keys} | ({"steps": steps} if steps else {})


# --------------------------------------------------------------------------- runs


def run_one(
    workers: dict[str, Driver], trainer: str, mode: str, model: Path, rows: str, s: dict, pad: int
) -> dict[str, Any]:
    worker = workers["trl" if trainer == "trl" else "ours"]
    meter = OtherLoad(worker.proc.pid)
    mark = meter.start()
    answer = worker.call(
        "train",
        trainer=trainer,
        mode=mode,
        model=str(model),
        rows=rows,
        settings=s,
        pad_id=pad,
        scratch=str(worker.scratch),
    )
    answer["other_load_cpus"] = round(meter.stop(mark), 2)
    return answer


def measure(run: dict[str, Any], plan: list[dict[str, int]], warmup: int) -> dict[str, Any]:
    """Tokens/s over the timed steps (those after ``warmup``) of one run."""
    ends = run["step_ends_s"]
    if len(ends) != len(plan):
        raise RuntimeError(f"the run made {len(ends)} steps, not {len(plan)}")
    if warmup < 1:
        raise ValueError("the first step is never timed: warmup must be at least 1")
    seconds = ends[-1] - ends[warmup - 1]
    cpu = run["step_ends_cpu_s"][-1] - run["step_ends_cpu_s"][warmup - 1]
    timed = plan[warmup:]
    tokens = sum(p["tokens"] for p in timed)
    trained = sum(p["trained"] for p in timed)
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "tokens_per_s": tokens / seconds,
        "trained_tokens_per_s": trained / seconds,
        "s_per_step": seconds / len(timed),
        "tokens_per_cpu_s": tokens / cpu,
    }


def summarise(runs: list[dict[str, Any]], plan: list[dict[str, int]], warmup: int) -> dict:
    measured = [measure(r, plan, warmup) for r in runs]
    out: dict[str, Any] = {
        key: statistics.median(m[key] for m in measured)
        for key in ("tokens_per_s", "trained_tokens_per_s", "s_per_step", "tokens_per_cpu_s")
    }
    rates = [m["tokens_per_s"] for m in measured]
    out["spread"] = (max(rates) - min(rates)) / out["tokens_per_s"]  # across rounds
    out["run_wall_s"] = statistics.median(r["wall_s"] for r in runs)
    out["setup_s"] = statistics.median(r["setup_s"] for r in runs)
    out["runs"] = [
        m
        | {
            "wall_s": r["wall_s"],
            "setup_s": r["setup_s"],
            "other_load_cpus": r["other_load_cpus"],
            "losses": r["losses"],
        }
        for m, r in zip(measured, runs, strict=True)
    ]
    out["losses"] = runs[0]["losses"]
    if runs[0].get("tokens_seen"):
        out["tokens_seen"] = runs[0]["tokens_seen"]
    return out


def bench_model(
    name: str, model: Path, data: dict, workers: dict[str, Driver], bar: Progress
) -> dict[str, Any]:
    spec = MODELS[name]
    s = settings(name)
    flat = [
        (kind, (trainer, mode))
        for kind in data["datasets"]
        for trainer, mode in CONFIGS[kind]
        if trainer != "trl" or "trl" in workers
    ]
    warm = sorted({c for _, c in flat})
    task = bar.add_task(name, total=len(warm) + spec["repeats"] * len(flat))
    skewed = data["datasets"]["skewed"]["path"]
    for trainer, mode in warm:  # untimed: imports, first calls, allocator
        bar.update(task, description=f"{name}: warm-up {trainer}/{mode}")
        run_one(workers, trainer, mode, model, skewed, settings(name, 1), data["pad_id"])
        bar.advance(task)
    runs: dict[tuple[str, str, str], list[dict]] = {(k, t, m): [] for k, (t, m) in flat}
    for r in range(spec["repeats"]):
        shift = r % len(flat)
        for kind, (trainer, mode) in flat[shift:] + flat[:shift]:
            bar.update(task, description=f"{name}: round {r + 1}, {kind} {trainer}/{mode}")
            rows = data["datasets"][kind]["path"]
            runs[(kind, trainer, mode)].append(
                run_one(workers, trainer, mode, model, rows, s, data["pad_id"])
            )
            bar.advance(task)
    results: dict[str, Any] = {}
    for (kind, trainer, mode), got in sorted(
        runs.items(), key=lambda item: (item[0][0] != "uniform", CANONICAL.index(item[0][1:]))
    ):
        plan = data["datasets"][kind]["plan"]
        results.setdefault(kind, {})[f"{trainer}/{mode}"] = summarise(got, plan, spec["warmup"])
    return results


def warnings_logged(log: Path) -> dict[str, int]:
    """transformers' warnings in our worker's log, counted by text (one per micro-batch
    means the training loop pays for it on every step)."""
    counts: dict[str, int] = {}
    text = log.read_text(errors="replace") if log.exists() else ""
    for line in text.splitlines():
        if line.startswith("[transformers]"):
            counts[line] = counts.get(line, 0) + 1
    return counts


# --------------------------------------------------------------------------- main


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the tiny model alone, fewer rounds")
    parser.add_argument("--models", default="tiny,smollm2")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (per model)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads per worker (1: steady when other work shares the CPUs)",
    )
    parser.add_argument("--no-trl", action="store_true", help="skip SFTTrainer")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.quick:
        args.models = "tiny"
        MODELS["tiny"] |= {"steps": 8, "warmup": 2, "repeats": 3}
    args.models = [m for m in str(args.models).split(",") if m]
    return args


def start_workers(args: argparse.Namespace, scratch: Path, not_run: dict) -> dict[str, Driver]:
    workers = {
        "ours": Driver(
            Path(sys.executable), BENCH / "_finetune_driver.py", scratch, args.threads, "ours"
        )
    }
    if args.no_trl:
        not_run["trl"] = "--no-trl"
        return workers
    try:
        py = ensure_venv()
        workers["trl"] = Driver(py, BENCH / "_finetune_trl_driver.py", scratch, args.threads, "trl")
        workers["trl"].call("versions")
    except (SetupError, RuntimeError) as error:
        not_run["trl"] = str(error)
        workers.pop("trl", None)
    return workers


def main() -> None:
    args = parse()
    started = time.time()
    not_run: dict[str, str] = {}
    report: dict[str, Any] = {"results": {}, "data": {}, "settings": {}}
    with tempfile.TemporaryDirectory(prefix="ft-bench-") as tmp:
        work = Path(tmp)
        workers = start_workers(args, work, not_run)
        try:
            versions = {"ours": ours_version("finetune", "genai")}
            versions |= workers["ours"].call("versions")["versions"]
            if "trl" in workers:
                versions["trl_venv"] = venv_versions(ensure_venv())
            with Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                refresh_per_second=2,
            ) as bar:
                for name in args.models:
                    model = build_model(name, work)
                    data = build_data(name, model, work)
                    if args.repeats:
                        MODELS[name]["repeats"] = args.repeats
                    report["data"][name] = {
                        k: {"stats": v["stats"], "plan": v["plan"]}
                        for k, v in data["datasets"].items()
                    }
                    if "trl" in workers:
                        report.setdefault("trl_template_check", {})[name] = workers["trl"].call(
                            "template_check", model=str(model)
                        )
                    report["settings"][name] = settings(name) | {
                        "warmup_steps_untimed": MODELS[name]["warmup"],
                        "repeats": MODELS[name]["repeats"],
                    }
                    report["results"][name] = bench_model(name, model, data, workers, bar)
                    report.setdefault("fixed_costs", {})[name] = workers["ours"].call(
                        "fixed_costs", model=str(model), settings=settings(name)
                    )
        finally:
            for worker in workers.values():
                worker.close()
            report["trainer_warnings"] = warnings_logged(workers["ours"].log_path)
    _, _, readme_hash = readme_prose()
    report |= {
        "command": " ".join([".venv/bin/python bench/finetune_throughput.py", *sys.argv[1:]]),
        "args": {"quick": args.quick, "models": args.models, "threads": args.threads},
        "machine": machine(),
        "threads": args.threads,
        "versions": versions | {"matplotlib": version("matplotlib")},
        "readme_sha256": readme_hash,
        "not_run": not_run,
        "wall_s": round(time.time() - started, 1),
    }
    report["goals"] = goals(report)
    report["notes"] = notes(report)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "finetune_throughput.json").write_text(json.dumps(report, indent=1))
    text = markdown(report)
    (args.output / "finetune_throughput.md").write_text(text)
    drawn = plot(report, args.output / "finetune_throughput.png")
    print(text)
    if not drawn:
        print("(no chart: matplotlib is not installed)", file=sys.stderr)


if __name__ == "__main__":
    main()
