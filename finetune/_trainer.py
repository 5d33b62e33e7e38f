"""Local training: PEFT adapters trained by transformers' ``Trainer``.

What Trainer and PEFT do is theirs: the optimisation loop, gradient accumulation with the
loss normalised by the trained tokens of the whole window, schedulers, evaluation, early
stopping, checkpoints with optimizer, scheduler and RNG states, resuming mid-epoch by
skipping the batches already seen, data parallelism through accelerate. Ours is what they
lack: the loss mask and padding-free packing (:mod:`finetune._tokens`), a marker that makes
a checkpoint count only once every file of it is on disk with its hash (a crash or a full
disk mid-save leaves a checkpoint that is never resumed from), a lock that tells a killed
run from a running one, and metrics per optimizer step to the registry.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finetune._config import FineTuneConfig
from finetune._tokens import Collator, Encoded
from genai.errors import MissingDependencyError, ValidationError
from genai.files import atomic_write_text

__all__ = [
    "MARKER",
    "LocalResult",
    "complete_checkpoints",
    "latest_checkpoint",
    "train_local",
]

MARKER = "genai-checkpoint.json"
MetricsSink = Callable[[dict[str, float], int], None]


@dataclass(frozen=True)
class LocalResult:
    adapter_dir: Path
    global_step: int
    losses: dict[int, float]  # optimizer step → training loss
    stopped_early: bool


def _require() -> tuple[Any, Any, Any]:
    try:
        import peft
        import torch
        import transformers
    except ImportError as error:
        raise MissingDependencyError(
            error.name or "transformers", extra="llm", purpose="fine-tuning"
        ) from error
    return torch, transformers, peft


def checkpoint_files(folder: Path) -> dict[str, str]:
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != MARKER:
            out[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def complete_checkpoints(output_dir: Path) -> list[Path]:
    """Checkpoints whose marker lists every file with its hash, oldest first."""
    found = []
    for folder in output_dir.glob("checkpoint-*"):
        try:
            marker = json.loads((folder / MARKER).read_text())
            step = int(folder.name.split("-", 1)[1])
        except (OSError, ValueError):
            continue
        if marker.get("step") == step and marker.get("files") == checkpoint_files(folder):
            found.append((step, folder))
    return [folder for _, folder in sorted(found)]


def latest_checkpoint(output_dir: Path) -> Path | None:
    complete = complete_checkpoints(output_dir)
    return complete[-1] if complete else None


def discard_incomplete(output_dir: Path) -> list[Path]:
    """Remove checkpoints a crash left half-written; returns them."""
    keep = set(complete_checkpoints(output_dir))
    dropped = [f for f in output_dir.glob("checkpoint-*") if f.is_dir() and f not in keep]
    for folder in dropped:
        shutil.rmtree(folder, ignore_errors=True)
    return dropped


class _TrainingSet:
    def __init__(self, rows: Sequence[Encoded]) -> None:
        self.rows = list(rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        row = self.rows[index]
        return {"input_ids": row.input_ids, "labels": row.labels}


def check_hardware(config: FineTuneConfig) -> None:
    """QLoRA's 4-bit base needs CUDA: say so before a run is opened."""
    if config.method != "qlora":
        return
    torch, _, _ = _require()
    if not torch.cuda.is_available():
        raise ValidationError(
            "method qlora trains a 4-bit base model with bitsandbytes, which needs a CUDA "
            "GPU, and this machine has none: use method lora (the same adapter on a "
            "full-precision base), or run on a GPU machine",
            field="method",
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as error:
        raise MissingDependencyError("bitsandbytes", extra="gpu", purpose="QLoRA") from error


def load_model(config: FineTuneConfig, model_dir: Path) -> Any:
    """The base model with a fresh adapter; seeded, so the adapter's initial weights and
    therefore the trained adapter are the same for the same seed."""
    torch, transformers, peft = _require()
    transformers.set_seed(config.seed)
    options: dict[str, Any] = {"dtype": torch.float32, "attn_implementation": "sdpa"}
    check_hardware(config)
    if config.method == "qlora":
        options["quantization_config"] = transformers.BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
        options["dtype"] = torch.bfloat16
    model = transformers.AutoModelForCausalLM.from_pretrained(str(model_dir), **options)
    # no KV cache in training: with one, transformers skips the block-diagonal mask of
    # packed rows (it builds it only when there is no cache and no attention mask)
    model.config.use_cache = False
    if config.method == "qlora":
        model = peft.prepare_model_for_kbit_training(model)
    lora = peft.LoraConfig(
        r=config.rank,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=config.target_modules,
        use_dora=config.method == "dora",
        use_rslora=config.method == "rslora",
        task_type="CAUSAL_LM",
    )
    return peft.get_peft_model(model, lora)


def train_local(
    config: FineTuneConfig,
    *,
    model_dir: Path,
    tokenizer: Any,
    train: Sequence[Encoded],
    eval: Sequence[Encoded] = (),
    output_dir: Path,
    resume: bool = False,
    on_metrics: MetricsSink | None = None,
    callbacks: Sequence[Any] = (),
    progress: bool = True,
) -> LocalResult:
    """Train an adapter; checkpoints go to ``output_dir``, the adapter to its ``adapter``
    folder. With ``resume``, training continues from the newest complete checkpoint."""
    torch, transformers, _ = _require()
    output_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = None
    if resume:
        discard_incomplete(output_dir)
        checkpoint = latest_checkpoint(output_dir)
    model = load_model(config, model_dir)
    evaluating = bool(eval) and config.eval_every is not None
    args = transformers.TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation,
        optim=config.optimizer,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler,
        warmup_steps=config.warmup_steps,
        weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        logging_steps=1,
        save_strategy="steps",
        save_steps=config.checkpoint_every,
        save_total_limit=config.keep_checkpoints,
        eval_strategy="steps" if evaluating else "no",
        eval_steps=config.eval_every if evaluating else None,
        load_best_model_at_end=config.early_stopping_patience is not None,
        metric_for_best_model="eval_loss" if config.early_stopping_patience else None,
        seed=config.seed,
        data_seed=config.seed,
        report_to="none",
        remove_unused_columns=False,
        dataloader_num_workers=0,
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=not progress,
        # packed batches have no padding (and no attention mask to count it from)
        include_num_input_tokens_seen="all" if config.packing else "non_padding",
        bf16=config.method == "qlora",
    )
    recorder = _Recorder(on_metrics)
    extra = [recorder, _MarkCheckpoints(output_dir), *callbacks]
    if config.early_stopping_patience is not None:
        extra.append(
            transformers.EarlyStoppingCallback(
                early_stopping_patience=config.early_stopping_patience
            )
        )
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    trainer = _trainer_class()(
        model=model,
        args=args,
        train_dataset=_TrainingSet(train),
        eval_dataset=_TrainingSet(eval) if evaluating else None,
        data_collator=Collator(pad_id=int(pad or 0), packing=config.packing),
        callbacks=extra,
    )
    if not progress:  # no progress bar, and no dict printed per step either
        trainer.remove_callback(transformers.PrinterCallback)
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    adapter_dir = output_dir / "adapter"
    if trainer.is_world_process_zero():
        save_adapter(trainer.model, tokenizer, adapter_dir)
    stopped = trainer.state.global_step < trainer.state.max_steps
    return LocalResult(adapter_dir, trainer.state.global_step, dict(recorder.losses), stopped)


def save_adapter(model: Any, tokenizer: Any, dest: Path) -> None:
    """The adapter with the tokenizer (and chat template) it was trained with, written to a
    temporary folder and renamed into place."""
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)


def _trainer_class() -> type:
    _, transformers, _ = _require()
    base: Any = transformers.Trainer

    class CountingTrainer(base):  # type: ignore[misc]
        """``Trainer`` whose FLOP count reads the model's parameter count once: Trainer
        counts them again for every micro-batch, a walk over every module (about 10 ms
        a micro-batch on a 135M model with an adapter). The count is the same."""

        _parameters: int | None = None

        def floating_point_ops(self, inputs: dict[str, Any]) -> int:
            main = getattr(self.model, "main_input_name", "input_ids")
            if main not in inputs or not hasattr(self.model, "num_parameters"):
                return 0
            if self._parameters is None:
                self._parameters = int(self.model.num_parameters(exclude_embeddings=True))
            return 6 * int(inputs[main].numel()) * self._parameters

    return CountingTrainer


def _base_callback() -> type:
    _, transformers, _ = _require()
    return transformers.TrainerCallback  # type: ignore[no-any-return]


class _Recorder(_base_callback()):  # type: ignore[misc]
    """Metrics per optimizer step (loss, learning rate, grad norm, tokens/s, eval loss)."""

    def __init__(self, sink: MetricsSink | None) -> None:
        self.sink = sink
        self.losses: dict[int, float] = {}
        self._tokens = 0
        self._clock = time.perf_counter()

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **_: Any) -> None:
        if not state.is_world_process_zero or not logs:
            return
        step = int(state.global_step)
        out: dict[str, float] = {}
        names = {
            "loss": "loss",
            "learning_rate": "lr",
            "grad_norm": "grad_norm",
            "eval_loss": "eval_loss",
            "epoch": "epoch",
        }
        for key, name in names.items():
            value = logs.get(key)
            if isinstance(value, (int, float)) and math.isfinite(value):
                out[name] = float(value)
        if "loss" in out:
            self.losses[step] = out["loss"]
            seen = int(getattr(state, "num_input_tokens_seen", 0) or 0)
            now = time.perf_counter()
            if seen > self._tokens and now > self._clock:
                out["tokens_per_s"] = (seen - self._tokens) / (now - self._clock)
            self._tokens, self._clock = seen, now
        if out and self.sink is not None:
            self.sink(out, step)


class _MarkCheckpoints(_base_callback()):  # type: ignore[misc]
    """After Trainer has written checkpoint-N, a marker with the hash of each of its files
    (written atomically) makes it a checkpoint to resume from."""

    def __init__(self, output_dir: Path) -> None:
        self.output_dir = output_dir

    def on_save(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        if not state.is_world_process_zero:
            return
        step = int(state.global_step)
        folder = self.output_dir / f"checkpoint-{step}"
        if folder.is_dir():
            files = checkpoint_files(folder)
            atomic_write_text(folder / MARKER, json.dumps({"step": step, "files": files}))
