"""Structured output: decode tokens/s under a JSON schema vs unconstrained, same model and
prompts, and the per-token cost of the token mask, llguidance vs xgrammar, on the CPU.

    .venv/bin/python bench/constrained_decoding.py [--quick] [--models small,smollm2]
        [--batches 1,8] [--max-tokens 64] [--rounds 3] [--threads 1] [--no-xgrammar]

Throughput: the transformers backend (``create_backend("transformers")``, float32, CPU),
greedy, one counting prompt ("1, 2, 3, ...") for every row; B concurrent requests of
max_tokens each. Unconstrained rows continue the prompt; constrained rows follow a schema
that cannot end before max_tokens (an array of exactly max_tokens integers), so both modes
run the same number of decode steps with the same rows. Decode tokens/s = generated tokens
/ wall time of the batch (prompts are a few tokens, so prefill is a small share). Rounds
alternate the modes (unconstrained, constrained, unconstrained, ...) and each mode's
median round counts, so a change in other load on the machine hits both alike.

Mask cost, the two libraries alone: one typical schema (a nested order: an object with
an array of objects, an integer range, a string length, a boolean) and one valid
document, tokenized by each model's tokenizer; per token, the time to compute the
next-token bitmask, to apply it to a float32 logits row with the library's own CPU kernel
and to advance the matcher, plus the set-up of a schema seen the first time. xgrammar
(vLLM's default structured-output backend) runs in its own venv (bench/.venvs/xgrammar,
created when missing) behind bench/_xgrammar_driver.py.

Models: ``small``, ``tiny_model(hidden_size=256, num_layers=4)`` (random weights, a 512
token vocabulary), and ``smollm2``, SmolLM2-135M-Instruct (``genai.testing.smollm2_model``,
a 49,152 token vocabulary; converted once into bench/.venvs/smollm2).

Writes bench/results/constrained_decoding.json and .md, and prints the tables.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import torch
from _mask_timing import time_document
from _provenance import machine, ours_version, version

from genai.models import GenerationRequest, ResponseFormat, SamplingParams, create_backend
from genai.testing import smollm2_model, tiny_model

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
VENVS = BENCH / ".venvs"
XGRAMMAR_VENV = VENVS / "xgrammar"
XGRAMMAR_PACKAGES = ["xgrammar", "transformers", "tokenizers"]
#: Prompts to continue; each model uses the first whose greedy continuation runs to
#: max_tokens unconstrained too (a random model's may hit its end-of-sequence token).
PROMPTS = [
    "1, 2, 3, 4, 5, 6, 7, 8,",
    "Numbers: 0 1 2 3 4 5 6 7 8 9 10 42 100 2026.",
    "The quick brown fox jumps over the lazy dog;",
    "How do I open an account?",
]
GOAL = 0.10  # constrained decoding at most 10% slower than unconstrained
ORDER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "order": {
            "type": "object",
            "properties": {
                "id": {"type": "integer", "minimum": 1, "maximum": 99999},
                "customer": {"type": "string", "maxLength": 40},
                "lines": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "sku": {"type": "string", "maxLength": 12},
                            "qty": {"type": "integer", "minimum": 1, "maximum": 99},
                            "unit": {"enum": ["each", "box", "kg"]},
                        },
                        "required": ["sku", "qty", "unit"],
                        "additionalProperties": False,
                    },
                    "maxItems": 10,
                },
            },
            "required": ["id", "customer", "lines"],
            "additionalProperties": False,
        },
        "paid": {"type": "boolean"},
        "note": {"anyOf": [{"type": "string", "maxLength": 80}, {"type": "null"}]},
    },
    "required": ["order", "paid", "note"],
    "additionalProperties": False,
}
ORDER_DOCUMENT = json.dumps(
    {
        "order": {
            "id": 4711,
            "customer": "Ada Lovelace, Analytical Engines Ltd",
            "lines": [
                {"sku": "AE-1843", "qty": 2, "unit": "each"},
                {"sku": "CARD-PUNCH", "qty": 12, "unit": "box"},
                {"sku": "BRASS-GEAR", "qty": 7, "unit": "kg"},
            ],
        },
        "paid": True,
        "note": "Deliver to the back door; the front one is being rebuilt.",
    },
    separators=(",", ":"),
)


def forced_length_schema(n: int) -> dict[str, Any]:
    """An array of exactly ``n`` integers: at least 2n-1 tokens, so never done before n."""
    item = {"type": "integer", "minimum": 0, "maximum": 999}
    return {"type": "array", "items": item, "minItems": n, "maxItems": n}


# --------------------------------------------------------------------------- the machine


class OtherLoad:
    """CPUs used by processes outside this one while a block runs."""

    def __init__(self) -> None:
        self.me = psutil.Process()

    def _busy(self) -> float:
        t = psutil.cpu_times()
        return sum(t) - t.idle - getattr(t, "iowait", 0.0) - getattr(t, "steal", 0.0)

    def _ours(self) -> float:
        t = self.me.cpu_times()
        return t.user + t.system

    def start(self) -> tuple[float, float, float]:
        return self._busy(), self._ours(), time.monotonic()

    def stop(self, mark: tuple[float, float, float]) -> float:
        busy, ours, t0 = mark
        wall = max(time.monotonic() - t0, 1e-6)
        return max(0.0, (self._busy() - busy) - (self._ours() - ours)) / wall


# --------------------------------------------------------------------------- throughput


def build_models(names: list[str], work: Path) -> dict[str, Path]:
    models: dict[str, Path] = {}
    for name in names:
        if name == "small":
            models[name] = tiny_model(
                work / "small",
                hidden_size=256,
                num_layers=4,
                num_heads=8,
                vocab_size=512,
                context_window=1024,
                name="small-llama",
            )
        elif name == "smollm2":
            print("converting SmolLM2-135M-Instruct (once; kept in bench/.venvs)", file=sys.stderr)
            models[name] = smollm2_model(VENVS / "smollm2")
        else:
            raise SystemExit(f"unknown model {name!r}: use small, smollm2")
    return models


def request(prompt: str, constrained: bool, max_tokens: int) -> GenerationRequest:
    fmt = (
        ResponseFormat(type="json_schema", json_schema=forced_length_schema(max_tokens))
        if constrained
        else None
    )
    return GenerationRequest(
        prompt=prompt,
        response_format=fmt,
        params=SamplingParams(temperature=0.0, max_tokens=max_tokens),
    )


async def pick_prompt(backend: Any, max_tokens: int) -> tuple[str, bool]:
    """The first prompt whose unconstrained greedy continuation is max_tokens long (and
    whether one was), so that both modes generate the same number of tokens."""
    for prompt in PROMPTS:
        out = await backend.generate(request(prompt, False, max_tokens))
        if out.finish_reason == "length":
            return prompt, True
    return PROMPTS[0], False


async def one_batch(
    backend: Any, prompt: str, constrained: bool, batch: int, max_tokens: int
) -> dict:
    reqs = [request(prompt, constrained, max_tokens) for _ in range(batch)]
    started = time.perf_counter()
    outs = await asyncio.gather(*(backend.generate(r) for r in reqs))
    seconds = time.perf_counter() - started
    tokens = sum(o.completion_tokens for o in outs)
    if constrained:
        for out in outs:  # the schema admits nothing shorter than max_tokens
            assert out.finish_reason == "length", out
    return {"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds}


async def throughput(model: Path, batch: int, args: argparse.Namespace) -> dict[str, Any]:
    backend = create_backend(
        "transformers",
        model=model,
        device="cpu",
        dtype="float32",
        max_batch_size=max(batch, 1),
        max_wait_ms=20,  # a batch's requests start together
    )
    await backend.start()
    meter = OtherLoad()
    runs: dict[str, list[dict]] = {"unconstrained": [], "json_schema": []}
    try:
        prompt, same_length = await pick_prompt(backend, args.max_tokens)
        for constrained in (False, True):  # warm-up: caches, the mask kernel's compilation
            await one_batch(backend, prompt, constrained, batch, min(args.max_tokens, 8))
        for _ in range(args.rounds):
            for mode, mode_runs in runs.items():
                mark = meter.start()
                run = await one_batch(
                    backend, prompt, mode == "json_schema", batch, args.max_tokens
                )
                run["other_load_cpus"] = round(meter.stop(mark), 2)
                mode_runs.append(run)
    finally:
        await backend.close()
    row: dict[str, Any] = {"prompt": prompt, "same_length": same_length}
    for mode, mode_runs in runs.items():
        rate = statistics.median(r["tokens_per_s"] for r in mode_runs)
        row[mode] = {"tokens_per_s": rate, "runs": mode_runs}
    row["slowdown"] = 1 - row["json_schema"]["tokens_per_s"] / row["unconstrained"]["tokens_per_s"]
    # each round's modes ran back to back: their ratio is the steadier figure under load
    pairs = list(zip(runs["unconstrained"], runs["json_schema"], strict=True))
    row["slowdown_paired"] = 1 - statistics.median(
        c["tokens_per_s"] / u["tokens_per_s"] for u, c in pairs
    )
    row["added_us_per_token"] = statistics.median(
        (1 / c["tokens_per_s"] - 1 / u["tokens_per_s"]) * 1e6 for u, c in pairs
    )
    return row


# --------------------------------------------------------------------------- mask cost


def llguidance_mask(model: Path, rounds: int) -> dict[str, Any]:
    """llguidance's per-token cost: a matcher per request, the bitmask filled for its row
    and applied with llguidance's own torch kernel (the backend unpacks it its own way;
    its whole cost is in the throughput table)."""
    import llguidance
    import llguidance.hf
    from llguidance.torch import (
        allocate_token_bitmask,
        apply_token_bitmask_inplace,
        fill_next_token_bitmask,
    )
    from transformers import AutoConfig, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    vocab = int(AutoConfig.from_pretrained(model).vocab_size)
    started = time.perf_counter()
    llg_tokenizer = llguidance.hf.from_tokenizer(tokenizer)
    tokenizer_s = time.perf_counter() - started
    tokens = tokenizer.encode(ORDER_DOCUMENT, add_special_tokens=False)
    bitmask = allocate_token_bitmask(1, llg_tokenizer.vocab_size)
    logits = torch.randn(1, vocab)
    schema = json.dumps(ORDER_SCHEMA)

    def start() -> Any:
        grammar = llguidance.LLMatcher.grammar_from_json_schema(
            schema, defaults={"whitespace_flexible": False}
        )
        return llguidance.LLMatcher(llg_tokenizer, grammar)

    def apply() -> None:
        apply_token_bitmask_inplace(logits[:, : llg_tokenizer.vocab_size], bitmask)

    def consume(matcher: Any, token: int) -> None:
        if not matcher.consume_token(token):
            raise RuntimeError(f"llguidance refused a token of the document: {matcher.get_error()}")

    warm = start()  # the kernel compiles on its first call
    fill_next_token_bitmask(warm, bitmask, 0)
    apply()
    timings = time_document(
        start, lambda m: fill_next_token_bitmask(m, bitmask, 0), apply, consume, tokens, rounds
    )
    return {
        "version": version("llguidance"),
        "tokenizer_setup_ms": tokenizer_s * 1e3,
        **timings,
    }


def ensure_xgrammar() -> Path:
    """The xgrammar venv's python, after creating the venv when it is missing."""
    py = XGRAMMAR_VENV / "bin" / "python"
    check = [str(py), "-c", "import xgrammar, transformers, torch"]
    if py.exists() and subprocess.run(check, check=False, capture_output=True).returncode == 0:
        return py
    print(f"installing xgrammar into {XGRAMMAR_VENV} (a few minutes)...", file=sys.stderr)
    VENVS.mkdir(parents=True, exist_ok=True)
    constraints = VENVS / "constraints.txt"
    constraints.write_text("torch==2.13.0\n")  # never let anything pull a CUDA torch
    log = VENVS / "xgrammar-install.log"
    steps = [
        [sys.base_prefix + "/bin/python3", "-m", "venv", str(XGRAMMAR_VENV)],
        [str(py), "-m", "pip", "install", "-q", *XGRAMMAR_PACKAGES, "-c", str(constraints)],
    ]
    with log.open("wb") as out:
        for step in steps:
            if subprocess.run(step, check=False, stdout=out, stderr=subprocess.STDOUT).returncode:
                tail = [line for line in log.read_text().splitlines() if "WARNING: Loc" not in line]
                shutil.rmtree(XGRAMMAR_VENV, ignore_errors=True)
                raise RuntimeError(
                    f"installing xgrammar failed ({' '.join(step[:4])}...); see {log}:\n"
                    + "\n".join(tail[-10:])
                )
    return py


def xgrammar_mask(py: Path, model: Path, rounds: int) -> dict[str, Any]:
    spec = {
        "model": str(model),
        "schema": ORDER_SCHEMA,
        "document": ORDER_DOCUMENT,
        "rounds": rounds,
        "threads": torch.get_num_threads(),
    }
    out = subprocess.run(
        [str(py), str(BENCH / "_xgrammar_driver.py"), json.dumps(spec)],
        check=False,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if out.returncode:
        raise RuntimeError(f"the xgrammar driver failed:\n{out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# --------------------------------------------------------------------------- report


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "| model | batch | unconstrained tokens/s | json_schema tokens/s | slowdown | "
        "added per generated token |",
        "|---|---|---|---|---|---|",
    ]
    for model, by_batch in report["throughput"].items():
        for batch, row in by_batch.items():
            cells = [
                model,
                str(batch),
                f"{row['unconstrained']['tokens_per_s']:.1f}",
                f"{row['json_schema']['tokens_per_s']:.1f}",
                f"{row['slowdown_paired'] * 100:+.0f}%",
                f"{row['added_us_per_token']:+.0f} µs",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "| tokenizer | library | schema set-up | mask | apply (its CPU kernel) | advance "
        "| per token |",
        "|---|---|---|---|---|---|---|",
    ]
    for model, libs in report["mask_cost"].items():
        for lib, r in libs.items():
            lines.append(
                f"| {model} ({report['vocab'][model]:,}) | {lib} {r['version']} | "
                f"{r['setup_ms']:.1f} ms | {r['mask_us_per_token']:.0f} µs | "
                f"{r['apply_us_per_token']:.0f} µs | {r['consume_us_per_token']:.0f} µs | "
                f"{r['total_us_per_token']:.0f} µs |"
            )
    for what, why in report["not_run"].items():
        lines.append(f"| {what} | not run: {why.splitlines()[0][:160]} | | | | | |")
    lines += ["", *report["notes"], "", f"Command: `{report['command']}`"]
    return "\n".join(lines) + "\n"


def notes(report: dict[str, Any]) -> list[str]:
    worst = max(
        (row["slowdown_paired"] for by in report["throughput"].values() for row in by.values()),
        default=0.0,
    )
    loads = [
        run["other_load_cpus"]
        for by in report["throughput"].values()
        for row in by.values()
        for mode in ("unconstrained", "json_schema")
        for run in row[mode]["runs"]
    ]
    met = "met" if worst <= GOAL else "NOT met"
    return [
        f"Goal, json_schema at most {GOAL:.0%} slower than unconstrained: worst "
        f"{worst:+.0%} ({met}).",
        f"Machine: {report['machine']}; {report['threads']} torch threads; other processes "
        f"used {min(loads, default=0):.1f}-{max(loads, default=0):.1f} CPUs during the runs.",
        f"Versions: {report['versions']['ours']}; torch {report['versions']['torch']}, "
        f"transformers {report['versions']['transformers']}.",
        f"Throughput: greedy, max_tokens {report['args']['max_tokens']}, median of "
        f"{report['args']['rounds']} alternating rounds, slowdown and added time = medians "
        "of each round's pair; the schema forces max_tokens tokens; "
        "prompts: "
        + "; ".join(
            f"{model} {row['prompt']!r}"
            + ("" if row["same_length"] else " (unconstrained stops early: no prompt ran long)")
            for model, by in report["throughput"].items()
            for row in list(by.values())[:1]
        )
        + ".",
        "Mask cost: the document is a nested order (an object with an array of 3 objects, "
        "enums, integer ranges, strings), medians over rounds; set-up = a schema seen the "
        "first time (grammar + matcher; xgrammar's compiler with its cache off).",
    ]


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer tokens and rounds")
    parser.add_argument("--models", default="small,smollm2")
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5, help="per mode, alternating")
    parser.add_argument("--mask-rounds", type=int, default=20)
    parser.add_argument("--no-xgrammar", action="store_true")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1: steady under other load; 2 threads on 2 busy CPUs stall)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.quick:
        args.max_tokens = min(args.max_tokens, 32)
        args.rounds = min(args.rounds, 2)
        args.mask_rounds = min(args.mask_rounds, 5)
    args.models = [m for m in str(args.models).split(",") if m]
    args.batches = [int(b) for b in str(args.batches).split(",") if b]
    return args


def main() -> None:
    args = parse()
    torch.set_num_threads(args.threads)
    started = time.time()
    not_run: dict[str, str] = {}
    xgrammar_py: Path | None = None
    if not args.no_xgrammar:
        try:
            xgrammar_py = ensure_xgrammar()
        except RuntimeError as error:
            not_run["xgrammar"] = str(error)
    source = ours_version("genai")
    report: dict[str, Any] = {"throughput": {}, "mask_cost": {}, "vocab": {}}
    with tempfile.TemporaryDirectory() as tmp:
        models = build_models(args.models, Path(tmp))
        for name, path in models.items():
            report["vocab"][name] = int(
                json.loads((path / "config.json").read_text())["vocab_size"]
            )
            report["throughput"][name] = {}
            for batch in args.batches:
                print(f"{name}, batch {batch}...", file=sys.stderr)
                report["throughput"][name][batch] = asyncio.run(throughput(path, batch, args))
            libs: dict[str, Any] = {"llguidance": llguidance_mask(path, args.mask_rounds)}
            if xgrammar_py is not None:
                try:
                    libs["xgrammar"] = xgrammar_mask(xgrammar_py, path, args.mask_rounds)
                except (RuntimeError, subprocess.TimeoutExpired) as error:
                    not_run[f"xgrammar on {name}"] = str(error)
            report["mask_cost"][name] = libs
    report |= {
        "command": " ".join([".venv/bin/python bench/constrained_decoding.py", *sys.argv[1:]]),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": machine(),
        "threads": torch.get_num_threads(),
        "versions": {
            "ours": source,
            "torch": version("torch"),
            "transformers": version("transformers"),
            "llguidance": version("llguidance"),
        },
        "not_run": not_run,
        "wall_s": round(time.time() - started, 1),
    }
    report["notes"] = notes(report)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "constrained_decoding.json").write_text(json.dumps(report, indent=1))
    text = markdown(report)
    (args.output / "constrained_decoding.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
