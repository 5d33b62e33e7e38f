"""TRL's SFTTrainer, driven over JSON lines: runs in its own venv (bench/.venvs/trl), never ours.

    bench/.venvs/trl/bin/python bench/_finetune_trl_driver.py THREADS

Requests: ``train`` (``mode`` ``padding``, TRL's default, or ``padding_free``; ``model``,
``rows``, ``settings``, ``scratch``) and ``versions``.

What is matched, and how. SmolLM2's chat template has no ``{% generation %}`` markers and
TRL's ``assistant_only_loss=True`` refuses it ("patching is not supported for this
template"), so SFTTrainer gets the rows pre-tokenized: ``input_ids`` and ``assistant_masks``
(1 exactly where our labels train a token). TRL's own preparation turns the mask into
``labels`` (its ``build_labels``), so the trained tokens, and the loss, are ours. The model is
built as ours builds it (:func:`_finetune_common.load_peft_model`) and passed in as a
``PeftModel``. SFTConfig overrides TRL's defaults that differ from ours: ``bf16=False``
(fp32), ``gradient_checkpointing=False``, ``learning_rate``, ``logging_steps=1`` (ours logs
every step), no saving, ``data_seed`` (the same batch order); its printer callback is
removed as ours removes it. ``padding_free=True`` without packing needs ``max_length=None``
(TRL refuses it otherwise); no row is over max_length, so nothing is truncated either way.
Everything else is TRL's default, including its fused LM head (log-probs, entropy and
top-1 accuracy computed in chunks of the vocabulary) and its per-step metrics.
"""

from __future__ import annotations

import importlib.metadata
import time
from typing import Any

from _finetune_common import load_peft_model, read_rows, serve, step_timer, timing

_TOKENIZERS: dict[str, Any] = {}
_DATASETS: dict[str, Any] = {}


def tokenizer(model_dir: str) -> Any:
    if model_dir not in _TOKENIZERS:
        from transformers import AutoTokenizer

        _TOKENIZERS[model_dir] = AutoTokenizer.from_pretrained(model_dir)
    return _TOKENIZERS[model_dir]


def dataset(path: str) -> Any:
    if path not in _DATASETS:
        from datasets import Dataset

        rows = read_rows(path)
        _DATASETS[path] = Dataset.from_dict(
            {
                "input_ids": [r["input_ids"] for r in rows],
                "assistant_masks": [[int(x != -100) for x in r["labels"]] for r in rows],
            }
        )
    return _DATASETS[path]


def sft_config(s: dict[str, Any], padding_free: bool, output_dir: str) -> Any:
    from trl import SFTConfig

    return SFTConfig(
        output_dir=output_dir,
        per_device_train_batch_size=s["batch_size"],
        gradient_accumulation_steps=s["gradient_accumulation"],
        optim="adamw_torch",
        learning_rate=s["learning_rate"],
        lr_scheduler_type=s["lr_scheduler"],
        warmup_steps=s["warmup_steps"],
        weight_decay=s["weight_decay"],
        max_grad_norm=s["max_grad_norm"],
        max_steps=s["steps"],
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        seed=s["seed"],
        data_seed=s["seed"],
        bf16=False,
        fp16=False,
        gradient_checkpointing=False,
        use_cpu=True,
        dataloader_num_workers=0,
        disable_tqdm=True,
        max_length=None if padding_free else s["max_length"],
        padding_free=padding_free,
        packing=False,
        assistant_only_loss=False,  # the mask comes with the rows (see the module's doc)
    )


def train(req: dict[str, Any]) -> dict[str, Any]:
    import transformers
    from trl import SFTTrainer

    started = time.perf_counter()
    s, padding_free = req["settings"], req["mode"] == "padding_free"
    model = load_peft_model(req["model"], s)
    timer = step_timer()
    trainer = SFTTrainer(
        model=model,
        args=sft_config(s, padding_free, req["scratch"]),
        train_dataset=dataset(req["rows"]),
        processing_class=tokenizer(req["model"]),
        callbacks=[timer],
    )
    trainer.remove_callback(transformers.PrinterCallback)
    trainer.train()
    wall = time.perf_counter() - started
    losses = {int(e["step"]): float(e["loss"]) for e in trainer.state.log_history if "loss" in e}
    tokens = [int(e["num_tokens"]) for e in trainer.state.log_history if "num_tokens" in e]
    return timing(started, timer.begin, timer.ends, timer.cpu) | {
        "losses": losses,
        "tokens_seen": tokens,
        "wall_s": wall,
    }


def template_check(req: dict[str, Any]) -> dict[str, Any]:
    """Whether TRL's own assistant-only loss could train on the model's chat template."""
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    tok = tokenizer(req["model"])
    markers = has_generation_markers(tok.chat_template)
    try:
        patched = get_training_chat_template(tok)
        verdict = "usable as is" if patched is None else "TRL patches it"
    except ValueError as error:
        verdict = f"refused: {error}"
    return {"generation_markers": markers, "assistant_only_loss": verdict}


def versions(_: dict[str, Any]) -> dict[str, Any]:
    names = ("trl", "datasets", "torch", "transformers", "peft", "accelerate")
    return {"versions": {n: importlib.metadata.version(n) for n in names}}


if __name__ == "__main__":
    serve({"train": train, "template_check": template_check, "versions": versions})
