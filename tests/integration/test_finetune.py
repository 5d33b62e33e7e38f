"""Fine-tuning on a tiny model, through the registry: runs, lineage, the adapter and its
files; the same seed gives the same adapter bytes; a run killed at a random step (mid-epoch,
mid-accumulation window, in a subprocess) resumes to the same per-step losses and the same
adapter; packing and gradient accumulation change nothing but speed; DLP reaches the
trainer's input; bad input is refused before anything is registered."""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import finetune
import genai
from genai.errors import LicenseNotAllowed, NotFoundError, ValidationError

P = "tuning"
# the database only stores what these tests check: registry calls are tested on both elsewhere
pytestmark = [pytest.mark.slow, pytest.mark.sqlite_only]


def qa_rows(n: int = 24) -> list[dict[str, Any]]:
    names = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
    return [
        {
            "messages": [
                {"role": "user", "content": f"What is the code of {names[i % 8]} {i}?"},
                {"role": "assistant", "content": f"The code is {i * 7 % 100}."},
            ]
        }
        for i in range(n)
    ]


@pytest.fixture
def world(platform, tiny):
    client = platform()
    client.projects.create(P)
    client.registry.models.register(P, "tiny", source=str(tiny.model), license="apache-2.0")
    client.registry.datasets.register(P, "qa", qa_rows(), splits={"train": 0.8, "test": 0.2})
    return client


def config(**overrides) -> finetune.FineTuneConfig:
    values = {
        "name": "qa-tune",
        "base_model": "model:tiny",
        "dataset": "dataset:qa",
        "batch_size": 4,
        "gradient_accumulation": 2,
        "epochs": 2,
        "checkpoint_every": 2,
        "dropout": 0.1,
        "learning_rate": 1e-3,
        "max_length": 128,
    }
    values.update(overrides)
    return finetune.FineTuneConfig(**values)


def artifact(job: finetune.FineTuneJob) -> str:
    assert job.adapter is not None
    return job.adapter.artifact


def losses(client, run_id: str) -> dict[int, float]:
    return {p.step: p.value for p in client.registry.runs.metrics(P, run_id, key="loss")}


def test_a_run_trains_registers_and_records_its_lineage(world) -> None:
    job = finetune.train(world, P, config(eval_every=2), progress=False)
    run = job.run
    assert run.status == "finished" and run.kind == "fine-tuning"
    assert run.params["config"]["rank"] == 8
    assert set(run.params["packages"]) >= {"torch", "transformers", "peft"}
    assert run.inputs == ["dataset:qa@1", "model:tiny@1"]
    steps = losses(world, run.id)
    train_rows = run.params["rows"]["train"]
    batches = math.ceil(train_rows / 4)
    per_epoch = math.ceil(batches / 2)  # optimizer steps: windows of 2 batches
    assert sorted(steps) == list(range(1, 2 * per_epoch + 1))
    keys = {p.key for p in job.metrics()}
    assert {"loss", "lr", "grad_norm", "eval_loss"} <= keys  # tokens_per_s depends on the clock
    figure = job.plot()
    assert figure._repr_png_().startswith(b"\x89PNG")  # a notebook shows it as a picture
    (axes,) = figure.axes
    assert [line.get_label() for line in axes.get_lines()] == ["loss", "eval_loss"]
    assert list(axes.get_lines()[0].get_xdata()) == sorted(steps)

    adapter = job.adapter
    assert adapter is not None
    assert (adapter.method, adapter.rank, adapter.run) == ("lora", 8, run.id)
    assert adapter.base_model == "model:tiny@1"
    assert "<|im_start|>" in adapter.chat_template and adapter.tokenizer_sha256
    graph = world.registry.lineage(P, adapter.ref)
    assert {"dataset:qa@1", f"run:{run.id}", "model:tiny@1"} <= set(graph.ancestors)
    folder = world.registry.adapters.download(P, adapter.ref, job.output_dir / "copy")
    config_file = json.loads((folder / "adapter_config.json").read_text())
    assert config_file["r"] == 8 and (folder / "tokenizer.json").is_file()


def test_the_same_seed_gives_the_same_adapter_bytes(world) -> None:
    first = finetune.train(world, P, config(name="a"), progress=False)
    second = finetune.train(world, P, config(name="b"), progress=False)
    other = finetune.train(world, P, config(name="c", seed=1), progress=False)
    assert artifact(first) == artifact(second)
    assert losses(world, first.run.id) == losses(world, second.run.id)
    assert artifact(other) != artifact(first)


KILLER = textwrap.dedent(
    """
    import os, sys
    import transformers
    import finetune
    from genai import Settings, connect

    class Kill(transformers.TrainerCallback):
        # counts micro-batches: a kill between two of one window is mid-accumulation
        def __init__(self, at):
            self.at, self.seen = at, 0
        def on_substep_end(self, args, state, control, **kw):
            self.tick()
        def on_step_end(self, args, state, control, **kw):
            self.tick()
        def tick(self):
            self.seen += 1
            if self.seen == self.at:
                os._exit(9)  # as SIGKILL: no handler runs, the run stays "running"

    cfg = finetune.load_config(sys.argv[1])
    with connect(Settings()) as client:
        finetune.train(client, "tuning", cfg, progress=False, callbacks=[Kill(int(sys.argv[2]))])
    """
)


def kill_at(settings, cfg: finetune.FineTuneConfig, micro_batch: int, tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(cfg.to_dict()))
    env = {
        **os.environ,
        "GENAI_HOME": str(settings.home),
        "GENAI_DATABASE_URL": settings.resolved_database_url,
        "GENAI_USER": "admin",
    }
    done = subprocess.run(
        [sys.executable, "-c", KILLER, str(tmp_path / "config.json"), str(micro_batch)],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 9, done.stderr[-2000:]


@pytest.mark.parametrize("where", ["mid-epoch", "mid-window", "second-epoch"])
def test_a_killed_run_resumes_to_the_same_losses_and_adapter(
    world, settings, tmp_path, where
) -> None:
    world.registry.datasets.register(P, "qa48", qa_rows(48), splits={"train": 0.8, "test": 0.2})
    cfg = config(name="killed", dataset="dataset:qa48")
    whole = finetune.train(world, P, config(name="whole", dataset="dataset:qa48"), progress=False)
    micro_batches = 2 * -(-whole.run.params["rows"]["train"] // 4)  # two epochs
    half = micro_batches // 2
    rng = random.Random(where)
    at = {
        "mid-epoch": rng.randrange(4, half, 2),  # just after a window's optimizer step
        "mid-window": rng.randrange(3, half, 2),  # between two micro-batches of a window
        "second-epoch": rng.randrange(half + 1, micro_batches),
    }[where]
    kill_at(settings, cfg, at, tmp_path)
    (killed,) = world.registry.runs.list(P, name="killed")
    assert killed.status == "running"  # killed: nothing could mark it
    job = finetune.resume(world, P, killed.id, progress=False)
    assert job.run.status == "finished"
    assert losses(world, killed.id) == losses(world, whole.run.id)
    assert artifact(job) == artifact(whole)


def test_a_run_that_is_still_training_is_not_resumed_twice(world) -> None:
    import fcntl

    from finetune._run import run_dir

    active = world.registry.runs.start(
        P, "busy", params={"config": config().to_dict()}, kind="fine-tuning"
    )
    with open(run_dir(world, P, active.id) / ".lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        with pytest.raises(Exception, match="still training in another process"):
            finetune.resume(world, P, active.id, progress=False)


def test_a_full_disk_mid_checkpoint_interrupts_and_the_half_checkpoint_is_never_used(
    world, monkeypatch
) -> None:
    """A disk that fills while checkpoint 4 is written (here: its optimizer file is cut
    short and the write fails with ENOSPC; a real full disk cannot be made on these
    machines): the run is interrupted with the fix in the message, checkpoint 4 is never
    resumed from, and the resumed run ends exactly as an uninterrupted one."""
    import errno

    import transformers

    whole = finetune.train(world, P, config(name="whole"), progress=False)
    real = transformers.Trainer._save_optimizer_and_scheduler

    def fill_the_disk(self, output_dir):
        if self.state.global_step == 4:
            Path(output_dir, "optimizer.pt").write_bytes(b"half")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, output_dir)

    monkeypatch.setattr(transformers.Trainer, "_save_optimizer_and_scheduler", fill_the_disk)
    with pytest.raises(ValidationError, match=r"the disk is full .* `genai finetune resume"):
        finetune.train(world, P, config(name="full"), progress=False)
    (full,) = world.registry.runs.list(P, name="full")
    assert full.status == "interrupted"
    from finetune._run import run_dir
    from finetune._trainer import latest_checkpoint

    folder = run_dir(world, P, full.id)
    assert (folder / "checkpoint-4").is_dir()  # half-written, and left behind by the crash
    latest = latest_checkpoint(folder)
    assert latest is not None and latest.name == "checkpoint-2"
    monkeypatch.setattr(transformers.Trainer, "_save_optimizer_and_scheduler", real)
    job = finetune.resume(world, P, full.id, progress=False)
    assert losses(world, full.id) == losses(world, whole.run.id)
    assert artifact(job) == artifact(whole)


@pytest.mark.gpu
def test_qlora_trains_a_4bit_base_on_cuda(world) -> None:
    """Runs where a GPU is lent; never in CI."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("bitsandbytes")
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    job = finetune.train(world, P, config(name="q", method="qlora", dropout=0.0), progress=False)
    assert job.run.status == "finished"
    assert job.adapter is not None and job.adapter.method == "qlora"
    assert all(math.isfinite(v) for v in losses(world, job.run.id).values())


# ------------------------------------------------------------------ the loss


def test_packed_loss_equals_the_sum_of_unpacked_losses(world, tiny) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    prepared = finetune.prepare(world, P, config())
    rows = prepared.train[:6]
    model = AutoModelForCausalLM.from_pretrained(str(tiny.model), dtype=torch.float32)
    model.train(False)
    packed = finetune.Collator(pad_id=0, packing=True)(
        [{"input_ids": r.input_ids, "labels": r.labels} for r in rows]
    )
    with torch.no_grad():
        total = model(**packed, num_items_in_batch=1, use_cache=False).loss.item()
        each = [
            model(
                input_ids=torch.tensor([r.input_ids]),
                labels=torch.tensor([r.labels]),
                num_items_in_batch=1,
            ).loss.item()
            for r in rows
        ]
        unmasked = model(
            input_ids=packed["input_ids"], labels=packed["labels"], num_items_in_batch=1
        ).loss.item()
    assert abs(total - sum(each)) <= 1e-6 * sum(each)
    assert abs(unmasked - sum(each)) > 1e-3  # without the restarting positions, rows mix


def adapter_tensors(job) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(job.output_dir / "adapter" / "adapter_model.safetensors"))


@pytest.mark.parametrize("rows", [12, 9])  # 9: a full window of 6, then a partial one
def test_accumulation_equals_one_big_batch(world, rows) -> None:
    world.registry.datasets.register(P, f"qa{rows}", qa_rows(rows))
    common = {
        "dataset": f"dataset:qa{rows}",
        "train_split": None,
        "eval_split": None,
        "optimizer": "sgd",
        "learning_rate": 0.5,
        "dropout": 0.0,
        "epochs": 1,
    }
    small = finetune.train(
        world,
        P,
        config(name="small", batch_size=2, gradient_accumulation=3, **common),
        progress=False,
    )
    big = finetune.train(
        world,
        P,
        config(name="big", batch_size=6, gradient_accumulation=1, **common),
        progress=False,
    )
    a, b = adapter_tensors(small), adapter_tensors(big)
    assert a.keys() == b.keys()
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst <= 1e-6
    moved = max(a[k].abs().max().item() for k in a if "lora_B" in k)
    assert moved > 1e-3  # the step did change the adapter


def test_packing_trains_the_same_adapter_as_padding(world) -> None:
    common = {"optimizer": "sgd", "learning_rate": 0.5, "dropout": 0.0, "epochs": 1}
    padded = finetune.train(world, P, config(name="padded", **common), progress=False)
    packed = finetune.train(world, P, config(name="packed", packing=True, **common), progress=False)
    a, b = adapter_tensors(padded), adapter_tensors(packed)
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-5


# ------------------------------------------------------------------ governance, bad input


def test_dlp_treats_rows_before_the_trainer_sees_them(world) -> None:
    from genai.dlp import Policy, ProjectPolicies

    ProjectPolicies(world).set(P, Policy())
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"Email bob.smith{i}@example.com about order {i}"},
                {"role": "assistant", "content": f"Sent to bob.smith{i}@example.com."},
            ]
        }
        for i in range(8)
    ]
    world.registry.datasets.register(P, "mail", rows, splits={"train": 0.75, "test": 0.25})
    prepared = finetune.prepare(world, P, config(dataset="dataset:mail"))
    (treated,) = prepared.datasets
    assert treated.startswith("dataset:mail-dlp@")
    seen = " ".join(
        prepared.tokenizer.decode(r.input_ids) for r in [*prepared.train, *prepared.eval]
    )
    assert "@example.com" not in seen and "bob.smith" not in seen
    assert len(prepared.train) + len(prepared.eval) == 8
    assert "dataset:mail@1" in world.registry.lineage(P, treated).ancestors


def test_bad_input_is_refused_before_anything_is_registered(world) -> None:
    with pytest.raises(NotFoundError):
        finetune.train(world, P, config(base_model="model:nope"), progress=False)
    narrower = world.settings.model_copy(update={"license_allowlist": ["mit"]})
    with genai.connect(narrower, user="admin", store=world.store) as strict:
        with pytest.raises(LicenseNotAllowed, match="no longer on this platform's allowlist"):
            finetune.train(strict, P, config(), progress=False)
    with pytest.raises(ValidationError, match="over max_length 16"):
        finetune.train(world, P, config(max_length=16), progress=False)
    with pytest.raises(ValidationError, match="needs a CUDA GPU"):
        finetune.train(world, P, config(method="qlora"), progress=False)
    with pytest.raises(ValidationError, match="rank: Input should be less than or equal"):
        finetune.load_config({"base_model": "m", "dataset": "d", "rank": 4096})
    with pytest.raises(ValidationError, match="has no split 'dev'"):
        finetune.train(world, P, config(train_split="dev"), progress=False)
    assert world.registry.runs.list(P) == []
    assert world.registry.adapters.list(P) == []


# ------------------------------------------------------------------ data parallel

TRAIN = textwrap.dedent(
    """
    import sys
    import finetune
    from genai import Settings, connect

    with connect(Settings()) as client:
        finetune.train(client, "tuning", finetune.load_config(sys.argv[1]), progress=False)
    """
)


def test_two_processes_train_what_one_does_at_the_same_global_batch(
    world, settings, tmp_path, free_port
) -> None:
    """torchrun with 2 CPU processes (gloo), 2 rows each, against one process with 4."""
    world.registry.datasets.register(P, "qa32", qa_rows(32))
    common = {
        "dataset": "dataset:qa32",
        "train_split": None,
        "eval_split": None,
        "gradient_accumulation": 1,
        "dropout": 0.0,
        "epochs": 1,
    }
    one = finetune.train(world, P, config(name="one", batch_size=4, **common), progress=False)
    (tmp_path / "two.json").write_text(
        json.dumps(config(name="two", batch_size=2, **common).to_dict())
    )
    (tmp_path / "train.py").write_text(TRAIN)
    env = {
        **os.environ,
        "GENAI_HOME": str(settings.home),
        "GENAI_DATABASE_URL": settings.resolved_database_url,
        "GENAI_USER": "admin",
        "OMP_NUM_THREADS": "1",
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            str(free_port()),
            str(tmp_path / "train.py"),
            str(tmp_path / "two.json"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (two,) = world.registry.runs.list(P, name="two")
    assert two.status == "finished" and two.params["processes"] == 2
    assert [a.name for a in world.registry.adapters.list(P, name="two")] == ["two"]  # once
    first, second = losses(world, one.run.id), losses(world, two.id)
    assert first.keys() == second.keys() and len(first) == 8
    assert all(abs(first[k] - second[k]) <= 1e-4 * abs(first[k]) for k in first)
    a = adapter_tensors(one)
    from safetensors.torch import load_file

    from finetune._run import run_dir

    b = load_file(str(run_dir(world, P, two.id) / "adapter" / "adapter_model.safetensors"))
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-5


def test_merge_registers_the_merged_model_with_the_adapters_outputs(world) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    job = finetune.train(world, P, config(name="merged", merge=True, epochs=1), progress=False)
    merged = world.registry.models.get(P, "merged-merged")
    assert merged.metadata["run"] == job.run.id and merged.license == "apache-2.0"
    assert f"run:{job.run.id}" in world.registry.lineage(P, merged.ref).ancestors
    base_dir = world.registry.models.local_path(P, "model:tiny")
    ids = torch.tensor([[5, 17, 42, 99, 7]])
    with torch.no_grad():
        tuned = PeftModel.from_pretrained(
            AutoModelForCausalLM.from_pretrained(str(base_dir)), str(job.output_dir / "adapter")
        )
        folded = AutoModelForCausalLM.from_pretrained(merged.source)
        plain = AutoModelForCausalLM.from_pretrained(str(base_dir))
        want, got, before = (m(ids).logits for m in (tuned, folded, plain))
    assert torch.allclose(want, got, atol=1e-4)
    assert not torch.allclose(want, before, atol=1e-4)  # the adapter does change the model
