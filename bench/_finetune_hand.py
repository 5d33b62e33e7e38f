"""The baseline: a hand-written transformers + PEFT training loop, with nothing but what the
step needs.

The same model and adapter as the others (:func:`_finetune_common.load_peft_model`), the
same batches (the order ``Trainer`` draws with ``data_seed``: accelerate's seedable sampler is
``torch.randperm`` on a generator seeded with it), the same loss (summed over the window's
trained tokens and divided by their count, ``num_items_in_batch``, as ``Trainer`` does with
gradient accumulation), ``torch.optim.AdamW`` with ``Trainer``'s defaults, the same
scheduler, gradient clipping to ``max_grad_norm``. Padded batches carry an attention mask;
packed ones are one row with positions restarting per row and no mask, as ours.
"""

from __future__ import annotations

import time
from typing import Any

from _finetune_common import load_peft_model, read_rows, timing

IGNORE = -100


def batch_order(n: int, seed: int) -> list[int]:
    import torch

    return list(torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist())


def collate(rows: list[dict[str, list[int]]], pad_id: int, packing: bool) -> dict[str, Any]:
    import torch

    if packing:
        return {
            "input_ids": torch.tensor([[i for r in rows for i in r["input_ids"]]]),
            "labels": torch.tensor([[x for r in rows for x in r["labels"]]]),
            "position_ids": torch.tensor([[p for r in rows for p in range(len(r["input_ids"]))]]),
        }
    width = max(len(r["input_ids"]) for r in rows)
    ids, labels, mask = [], [], []
    for r in rows:
        pad = width - len(r["input_ids"])
        ids.append(r["input_ids"] + [pad_id] * pad)
        labels.append(r["labels"] + [IGNORE] * pad)
        mask.append([1] * len(r["input_ids"]) + [0] * pad)
    return {
        "input_ids": torch.tensor(ids),
        "labels": torch.tensor(labels),
        "attention_mask": torch.tensor(mask),
    }


def train(req: dict[str, Any]) -> dict[str, Any]:
    import torch
    import transformers

    started = time.perf_counter()
    s, packing = req["settings"], req["mode"] == "packing"
    rows = read_rows(req["rows"])
    model = load_peft_model(req["model"], s)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        params, lr=s["learning_rate"], betas=(0.9, 0.999), eps=1e-8, weight_decay=s["weight_decay"]
    )
    steps, bs, ga = s["steps"], s["batch_size"], s["gradient_accumulation"]
    scheduler = transformers.get_scheduler(
        s["lr_scheduler"], optimizer, num_warmup_steps=s["warmup_steps"], num_training_steps=steps
    )
    order = batch_order(len(rows), s["seed"])
    micro = [order[i : i + bs] for i in range(0, len(order), bs)]
    losses: dict[int, float] = {}
    ends: list[float] = []
    cpu: list[float] = []
    begin = time.perf_counter()
    for step in range(steps):
        batches = [
            collate([rows[j] for j in group], req["pad_id"], packing)
            for group in micro[step * ga : (step + 1) * ga]
        ]
        trained = sum(int((b["labels"][..., 1:] != IGNORE).sum()) for b in batches)
        total = torch.zeros(())
        for batch in batches:
            loss = model(**batch, num_items_in_batch=trained).loss
            loss.backward()
            total += loss.detach()
        torch.nn.utils.clip_grad_norm_(params, s["max_grad_norm"])
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses[step + 1] = float(total)  # logged every step, as the Trainers do
        ends.append(time.perf_counter())
        cpu.append(time.process_time())
    return timing(started, begin, ends, cpu) | {
        "losses": losses,
        "wall_s": time.perf_counter() - started,
    }
