"""Serving throughput: the transformers backend under concurrent load, 1 adapter vs 8
distinct adapters mixed, against a naive server that runs ``model.generate`` per request
after ``set_adapter`` (one request at a time).

    .venv/bin/python bench/serving_throughput.py [--clients 32] [--requests 4] [--max-tokens 64]

Writes bench/results/serving_throughput.json and .md. Every request is greedy with the
same max_tokens; tokens/s counts generated tokens over the wall time of the whole load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from genai.models import GenerationRequest, SamplingParams, create_backend
from genai.testing import tiny_adapter, tiny_model

RESULTS = Path(__file__).parent / "results"
PROMPTS = [
    "How do I open an account?",
    "Where is my invoice for last month?",
    "Training runs fine-tune a base model with LoRA.",
    "The quick brown fox jumps over the lazy dog.",
]


def build(workdir: Path, adapters: int, hidden: int, layers: int) -> tuple[Path, list[Path]]:
    model = tiny_model(
        workdir / "model",
        hidden_size=hidden,
        num_layers=layers,
        num_heads=8,
        vocab_size=512,
        context_window=1024,
        name="small-llama",
    )
    loras = [
        tiny_adapter(
            model,
            workdir / f"a{i}",
            seed=100 + i,
            rank=8,
            alpha=16,
            target_modules=("q_proj", "k_proj", "v_proj", "o_proj"),
            scale=0.05,
        )
        for i in range(adapters)
    ]
    return model, loras


def requests(n: int, adapters: list[str], max_tokens: int) -> list[GenerationRequest]:
    params = SamplingParams(max_tokens=max_tokens, temperature=0.0)
    return [
        GenerationRequest(
            prompt=PROMPTS[i % len(PROMPTS)], adapter=adapters[i % len(adapters)], params=params
        )
        for i in range(n)
    ]


async def batched(
    model: Path, loras: list[Path], reqs: list[GenerationRequest], clients: int, max_batch: int
) -> dict[str, float]:
    backend = create_backend(
        "transformers",
        model=model,
        max_batch_size=max_batch,
        max_wait_ms=2,
        adapters={f"a{i}": p for i, p in enumerate(loras)},
    )
    await backend.start()
    await backend.generate(reqs[0])  # warm-up
    queue = list(reqs)
    tokens = 0
    latencies: list[float] = []

    async def client() -> None:
        nonlocal tokens
        while queue:
            req = queue.pop()
            started = time.perf_counter()
            out = await backend.generate(req)
            latencies.append(time.perf_counter() - started)
            tokens += out.completion_tokens

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    wall = time.perf_counter() - started
    await backend.close()
    return {
        "tokens": tokens,
        "seconds": wall,
        "tokens_per_s": tokens / wall,
        "p50_latency_s": statistics.median(latencies),
    }


def naive(model: Path, loras: list[Path], reqs: list[GenerationRequest]) -> dict[str, float]:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    base = AutoModelForCausalLM.from_pretrained(model).eval()
    peft = PeftModel.from_pretrained(base, str(loras[0]), adapter_name="a0")
    for i, path in enumerate(loras[1:], 1):
        peft.load_adapter(str(path), adapter_name=f"a{i}")
    tokens = 0
    latencies = []
    started = time.perf_counter()
    with torch.no_grad():
        for req in reqs:
            t0 = time.perf_counter()
            peft.set_adapter(req.adapter)
            enc = tokenizer(req.prompt, return_tensors="pt")
            out = peft.generate(
                **enc,
                max_new_tokens=req.params.max_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
            tokens += out.shape[1] - enc["input_ids"].shape[1]
            latencies.append(time.perf_counter() - t0)
    wall = time.perf_counter() - started
    return {
        "tokens": tokens,
        "seconds": wall,
        "tokens_per_s": tokens / wall,
        "p50_latency_s": statistics.median(latencies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=4, help="per client")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    args = parser.parse_args()
    n = args.clients * args.requests
    with tempfile.TemporaryDirectory() as tmp:
        model, loras = build(Path(tmp), 8, args.hidden, args.layers)
        params = sum(
            p.numel()
            for p in __import__("transformers")
            .AutoModelForCausalLM.from_pretrained(model)
            .parameters()
        )
        one = ["a0"]
        eight = [f"a{i}" for i in range(8)]
        rows: dict[str, Any] = {}
        rows["batched, 1 adapter"] = asyncio.run(
            batched(
                model, loras, requests(n, one, args.max_tokens), args.clients, args.max_batch_size
            )
        )
        rows["batched, 8 adapters mixed"] = asyncio.run(
            batched(
                model, loras, requests(n, eight, args.max_tokens), args.clients, args.max_batch_size
            )
        )
        naive_n = min(n, 32)  # the naive server is slow: a sample is enough for its rate
        rows["naive, 1 adapter"] = naive(model, loras, requests(naive_n, one, args.max_tokens))
        rows["naive, 8 adapters mixed"] = naive(
            model, loras, requests(naive_n, eight, args.max_tokens)
        )
    ratio = (
        rows["batched, 8 adapters mixed"]["tokens_per_s"]
        / rows["batched, 1 adapter"]["tokens_per_s"]
    )
    speedup = (
        rows["batched, 8 adapters mixed"]["tokens_per_s"]
        / rows["naive, 8 adapters mixed"]["tokens_per_s"]
    )
    report = {
        "command": "python bench/serving_throughput.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}",
        "model": f"Llama architecture, hidden {args.hidden}, {args.layers} layers, "
        f"{params:,} parameters, LoRA rank 8 on q/k/v/o",
        "load": f"{args.clients} concurrent clients x {args.requests} requests, greedy, "
        f"max_tokens {args.max_tokens}",
        "results": rows,
        "eight_vs_one_adapter": ratio,
        "eight_adapters_vs_naive": speedup,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "serving_throughput.json").write_text(json.dumps(report, indent=2))
    lines = [
        "| setup | generated tokens/s | p50 request latency |",
        "|---|---|---|",
        *(
            f"| {name} | {r['tokens_per_s']:.0f} | {r['p50_latency_s'] * 1000:.0f} ms |"
            for name, r in rows.items()
        ),
        "",
        f"8 mixed adapters keep {ratio:.2f}x the 1-adapter throughput and run {speedup:.1f}x "
        "the naive baseline.",
        "",
        f"Command: `{report['command']}`; {report['machine']}; {report['model']}; "
        f"{report['load']}.",
    ]
    (RESULTS / "serving_throughput.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
