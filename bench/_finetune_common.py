"""What the fine-tuning benchmark's worker processes share (both venvs import it): the
JSON-lines loop, the step clock and the run settings. Needs only the standard library at
import; torch and transformers are imported where used.

Each trainer runs in a long-lived worker process (ours and the hand loop under the
project's venv, TRL under bench/.venvs/trl), so that all three run under the same
conditions: one process each, the same number of torch threads, nothing else in it (the
benchmark's progress display lives in the parent).
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

Handler = Callable[[dict[str, Any]], dict[str, Any]]


def serve(handlers: dict[str, Handler]) -> None:
    """One JSON request per stdin line, one JSON answer per line on the original stdout;
    whatever the libraries print (to Python's stdout or to file descriptor 1) goes to
    stderr, so it cannot corrupt the protocol."""
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    import torch

    torch.set_num_threads(threads)
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        try:
            answer = {"ok": True} | handlers[request.pop("op")](request)
        except Exception as error:  # report it to the parent, keep serving
            traceback.print_exc()
            answer = {"ok": False, "error": f"{type(error).__name__}: {error}"}
        answers.write(json.dumps(answer) + "\n")


def step_timer() -> Any:
    """A ``TrainerCallback`` that notes the clock at the end of every optimizer step (after
    the optimizer, scheduler and zero-grad; before that step's logging, which therefore
    falls in the next step's interval) and the Trainer's own count of input tokens."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):  # type: ignore[misc]
        def __init__(self) -> None:
            self.begin = 0.0
            self.ends: list[float] = []
            self.cpu: list[float] = []
            self.tokens_seen: list[int] = []

        def on_train_begin(self, args: Any, state: Any, control: Any, **_: Any) -> None:
            self.begin = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
            self.ends.append(time.perf_counter())
            self.cpu.append(time.process_time())
            self.tokens_seen.append(int(getattr(state, "num_input_tokens_seen", 0) or 0))

    return StepTimer()


def timing(started: float, begin: float, ends: list[float], cpu: list[float]) -> dict[str, Any]:
    """Step end times relative to the start of training, the process's CPU time at each
    (steadier than the wall clock when other work shares the CPUs), and the set-up."""
    return {
        "setup_s": begin - started,
        "step_ends_s": [t - begin for t in ends],
        "step_ends_cpu_s": [c - cpu[0] for c in cpu],
    }


def lora_config(peft: Any, s: dict[str, Any]) -> Any:
    return peft.LoraConfig(
        r=s["rank"],
        lora_alpha=s["alpha"],
        lora_dropout=s["dropout"],
        target_modules=s["target_modules"],
        task_type="CAUSAL_LM",
    )


def load_peft_model(model_dir: str, s: dict[str, Any]) -> Any:
    """What ``finetune._trainer.load_model`` does for method lora, spelled out with the
    libraries alone (the same seed, dtype, attention, cache setting and adapter), so that the
    three trainers start from the same weights."""
    import peft
    import torch
    import transformers

    transformers.set_seed(s["seed"])
    model = transformers.AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=torch.float32, attn_implementation="sdpa"
    )
    model.config.use_cache = False
    return peft.get_peft_model(model, lora_config(peft, s))


def read_rows(path: str) -> list[dict[str, list[int]]]:
    with open(path) as f:
        rows: list[dict[str, list[int]]] = json.load(f)
    return rows
