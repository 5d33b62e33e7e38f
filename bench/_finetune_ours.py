"""Ours: ``finetune._trainer.train_local`` on rows encoded by ``finetune._tokens.Encoder``,
exactly as a local run calls it, less the registry (a ``FineTuneConfig`` with dummy model and
dataset references; no metrics sink; no checkpoint during the steps timed; no progress bar).
A step clock rides along as one more ``TrainerCallback``."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from _finetune_common import read_rows, step_timer, timing

_TOKENIZERS: dict[str, Any] = {}


def config(s: dict[str, Any], packing: bool) -> Any:
    from finetune._config import FineTuneConfig

    return FineTuneConfig(
        name="bench",
        base_model="model:bench",
        dataset="dataset:bench",
        method="lora",
        rank=s["rank"],
        alpha=s["alpha"],
        dropout=s["dropout"],
        target_modules=s["target_modules"],
        optimizer="adamw_torch",
        learning_rate=s["learning_rate"],
        lr_scheduler=s["lr_scheduler"],
        warmup_steps=s["warmup_steps"],
        weight_decay=s["weight_decay"],
        max_grad_norm=s["max_grad_norm"],
        max_steps=s["steps"],
        batch_size=s["batch_size"],
        gradient_accumulation=s["gradient_accumulation"],
        max_length=s["max_length"],
        packing=packing,
        seed=s["seed"],
        checkpoint_every=1_000_000,  # nothing written while the steps are timed
        keep_checkpoints=1,
        register_adapter=False,
    )


def tokenizer(model_dir: str) -> Any:
    if model_dir not in _TOKENIZERS:
        from transformers import AutoTokenizer

        _TOKENIZERS[model_dir] = AutoTokenizer.from_pretrained(model_dir)
    return _TOKENIZERS[model_dir]


def train(req: dict[str, Any]) -> dict[str, Any]:
    from finetune._tokens import Encoded
    from finetune._trainer import train_local

    started = time.perf_counter()
    s = req["settings"]
    rows = [Encoded(r["input_ids"], r["labels"]) for r in read_rows(req["rows"])]
    timer = step_timer()
    out = Path(tempfile.mkdtemp(prefix="ours-", dir=req["scratch"]))
    try:
        result = train_local(
            config(s, req["mode"] == "packing"),
            model_dir=Path(req["model"]),
            tokenizer=tokenizer(req["model"]),
            train=rows,
            output_dir=out,
            callbacks=[timer],
            progress=False,
        )
        wall = time.perf_counter() - started  # the adapter's save included, as in a real run
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return timing(started, timer.begin, timer.ends, timer.cpu) | {
        "losses": {int(k): v for k, v in result.losses.items()},
        "tokens_seen": timer.tokens_seen,
        "wall_s": wall,
    }


def fixed_costs(req: dict[str, Any]) -> dict[str, Any]:
    """What transformers' Trainer does besides the step's arithmetic, timed alone on the
    same PEFT model: per micro-batch ``model.train()`` (``training_step``) and
    ``floating_point_ops`` (``num_parameters(exclude_embeddings=True)``); per optimizer step
    ``model.zero_grad()`` and the walk over every parameter in ``clip_grad_norm_``. The hand
    loop does none of these per step (it zeroes and clips the adapter's parameters only)."""
    from _finetune_common import load_peft_model

    model = load_peft_model(req["model"], req["settings"])

    def ms(call: Any, times: int = 10) -> float:
        call()
        begin = time.perf_counter()
        for _ in range(times):
            call()
        return (time.perf_counter() - begin) / times * 1e3

    return {
        "modules": sum(1 for _ in model.modules()),
        "train_ms": ms(model.train),
        "num_parameters_ms": ms(lambda: model.num_parameters(exclude_embeddings=True)),
        "zero_grad_ms": ms(model.zero_grad),
        "parameters_walk_ms": ms(lambda: list(model.parameters())),
    }
