"""Training runs (metrics per step, status, code version) and LoRA adapters (PEFT
directories read, stored and downloaded) on real SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from genai.errors import ConflictError, NotFoundError, ValidationError
from genai.registry import code_version

P = "demo"
WEIGHTS = bytes(range(256)) * 40  # stands in for adapter_model.safetensors


@pytest.fixture
def admin(platform):
    client = platform()
    client.projects.create(P)
    client.registry.models.register(P, "base", source="org/base-model", license="apache-2.0")
    client.registry.datasets.register(P, "train", [{"q": "a", "a": "b"}])
    return client


# ------------------------------------------------------------------ runs


def test_run_starts_with_its_inputs_params_and_code(admin) -> None:
    run = admin.registry.runs.start(
        P,
        "sft",
        params={"lr": 1e-4, "epochs": 2},
        datasets=["train@1"],
        base_model="base",
        code="abc123",
    )
    info = run.info()
    assert run.ref == f"run:{run.id}" == info.ref
    assert (info.name, info.kind, info.status) == ("sft", "training", "running")
    assert info.params == {"lr": 1e-4, "epochs": 2}
    assert info.code_version == "abc123"
    assert info.inputs == ["dataset:train@1", "model:base@1"]
    assert (info.created_by, info.ended_at, info.metrics) == ("user:admin", None, {})


def test_run_with_an_unknown_input_is_not_started(admin) -> None:
    with pytest.raises(NotFoundError):
        admin.registry.runs.start(P, "sft", datasets=["missing"], code="")
    with pytest.raises(NotFoundError):
        admin.registry.runs.start(P, "sft", base_model="base@9", code="")
    assert admin.registry.runs.list(P) == []


def test_metrics_are_logged_per_step(admin) -> None:
    run = admin.registry.runs.start(P, "sft", code="")
    run.log({"loss": 2.0, "acc": 0.1}, step=0)
    run.log({"loss": 1.5}, step=1)
    run.log({"loss": 1.25}, step=2)
    runs = admin.registry.runs
    history = [(m.key, m.step, m.value) for m in runs.metrics(P, run.id)]
    assert history == [("acc", 0, 0.1), ("loss", 0, 2.0), ("loss", 1, 1.5), ("loss", 2, 1.25)]
    assert [m.value for m in runs.metrics(P, run.id, key="loss")] == [2.0, 1.5, 1.25]
    assert run.info().metrics == {"loss": 1.25, "acc": 0.1}


def test_a_metric_is_written_once_per_step(admin) -> None:
    run = admin.registry.runs.start(P, "sft", code="")
    run.log({"loss": 2.0}, step=0)
    with pytest.raises(ConflictError, match="loss at step 0"):
        run.log({"loss": 9.0}, step=0)
    with pytest.raises(ConflictError):  # nothing of a refused call is kept
        run.log({"acc": 0.5, "loss": 9.0}, step=0)
    points = admin.registry.runs.metrics(P, run.id)
    assert [(m.key, m.step, m.value) for m in points] == [("loss", 0, 2.0)]


def test_finish_ends_a_run_once(admin) -> None:
    run = admin.registry.runs.start(P, "sft", code="")
    info = run.finish()
    assert info.status == "finished"
    assert info.ended_at is not None and info.ended_at >= info.started_at
    with pytest.raises(ConflictError, match="finished"):
        run.log({"loss": 1.0}, step=5)
    with pytest.raises(ConflictError):
        run.finish("failed")
    with pytest.raises(ValidationError):
        admin.registry.runs.start(P, "other", code="").finish("running")


def test_run_context_manager_finishes_or_fails(admin) -> None:
    runs = admin.registry.runs
    with runs.start(P, "ok", code="") as good:
        good.log({"loss": 1.0}, step=0)
    with pytest.raises(RuntimeError, match="boom"):
        with runs.start(P, "bad", code="") as bad:
            bad.log({"loss": 1.0}, step=0)
            raise RuntimeError("boom")
    with runs.start(P, "cancelled", code="") as early:
        early.finish("cancelled")  # already ended: leaving the block keeps that
    assert good.info().status == "finished"
    assert bad.info().status == "failed"
    assert early.info().status == "cancelled"
    assert [r.name for r in runs.list(P, status="failed")] == ["bad"]
    assert [r.name for r in runs.list(P)] == ["cancelled", "bad", "ok"]


def test_an_interrupted_run_reopens_and_relogs_its_steps(admin) -> None:
    runs = admin.registry.runs
    run = runs.start(P, "sft", datasets=["train"], params={"lr": 1e-4}, code="")
    for step, loss in enumerate([3.0, 2.0, 1.5]):
        run.log({"loss": loss}, step=step)
    killed = run.finish("interrupted")
    assert (killed.status, killed.ended_at is not None) == ("interrupted", True)
    with pytest.raises(ConflictError, match="interrupted"):
        run.log({"loss": 1.0}, step=3)

    resumed = run.reopen()  # from the checkpoint of step 1: step 2 is logged again
    assert (resumed.status, resumed.ended_at) == ("running", None)
    assert (resumed.params, resumed.inputs) == ({"lr": 1e-4}, ["dataset:train@1"])
    with pytest.raises(ConflictError, match="replace=True"):
        run.log({"loss": 1.4}, step=2)
    run.log({"loss": 1.4}, step=2, replace=True)
    run.log({"loss": 1.2, "acc": 0.5}, step=3, replace=True)  # new points: written as usual
    done = run.finish()
    history = [(m.key, m.step, m.value) for m in runs.metrics(P, run.id, key="loss")]
    assert history == [("loss", 0, 3.0), ("loss", 1, 2.0), ("loss", 2, 1.4), ("loss", 3, 1.2)]
    assert (done.status, done.metrics) == ("finished", {"loss": 1.2, "acc": 0.5})
    events = [e.action for e in admin.audit.list(P) if e.resource == f"run:{run.id}"]
    assert events.count("run.reopen") == 1 and events.count("run.finish") == 2


def test_a_failed_run_reopens_and_other_runs_do_not(admin) -> None:
    runs = admin.registry.runs
    failed = runs.start(P, "failed", code="")
    failed.finish("failed")
    assert failed.reopen().status == "running"
    with pytest.raises(ConflictError, match="still running") as running:
        failed.reopen()
    assert "finish it" in str(running.value)
    for status in ("finished", "cancelled"):
        run = runs.start(P, status, code="")
        run.finish(status)
        with pytest.raises(ConflictError, match=f"it is {status}; .*start a new run"):
            runs.reopen(P, run.id)
        assert run.info().status == status
    with pytest.raises(NotFoundError):
        runs.reopen(P, "0123456789ab")


def test_ctrl_c_in_a_run_block_leaves_it_interrupted(admin) -> None:
    with pytest.raises(KeyboardInterrupt):
        with admin.registry.runs.start(P, "sft", code="") as run:
            raise KeyboardInterrupt
    assert run.info().status == "interrupted"
    assert run.reopen().status == "running"


def test_unknown_run_is_not_found(admin) -> None:
    with pytest.raises(NotFoundError):
        admin.registry.runs.get(P, "0123456789ab")
    with pytest.raises(NotFoundError):
        admin.registry.runs.log(P, "0123456789ab", {"loss": 1.0}, step=0)


def _git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def test_code_version_is_the_git_commit(
    admin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "train.py").write_text("print('v1')\n")
    _git(repo, "add", "train.py")
    _git(repo, "commit", "-q", "-m", "v1")
    sha = _git(repo, "rev-parse", "HEAD")
    assert code_version(str(repo)) == sha
    (repo / "untracked.txt").write_text("ignored")
    assert code_version(str(repo)) == sha
    (repo / "train.py").write_text("print('v2')\n")
    assert code_version(str(repo)) == f"{sha}-dirty"
    (tmp_path / "plain").mkdir()
    assert code_version(str(tmp_path / "plain")) == ""
    monkeypatch.chdir(repo)
    assert admin.registry.runs.start(P, "sft").info().code_version == f"{sha}-dirty"


# ------------------------------------------------------------------ adapters


def _peft_dir(path: Path, **config: object) -> Path:
    path.mkdir(parents=True)
    values = {
        "peft_type": "LORA",
        "r": 8,
        "lora_alpha": 16,
        "target_modules": ["v_proj", "q_proj"],
        "base_model_name_or_path": "org/base",
    }
    values.update(config)
    (path / "adapter_config.json").write_text(json.dumps(values))
    (path / "adapter_model.safetensors").write_bytes(WEIGHTS)
    return path


def test_adapter_from_a_peft_directory_reads_its_config(admin, tmp_path: Path) -> None:
    with admin.registry.runs.start(P, "sft", datasets=["train"], code="") as run:
        pass
    info = admin.registry.adapters.register(
        P, "support", base_model="base", path=_peft_dir(tmp_path / "a"), run=run.id
    )
    assert (info.ref, info.method, info.rank, info.alpha) == ("adapter:support@1", "lora", 8, 16.0)
    assert info.target_modules == ["q_proj", "v_proj"]
    assert (info.base_model, info.run) == ("model:base@1", run.id)
    assert admin.registry.artifacts.manifest(info.artifact)["adapter_model.safetensors"] == {
        "sha256": admin.registry.artifacts.put_bytes(WEIGHTS),
        "size": len(WEIGHTS),
    }
    assert admin.registry.adapters.get(P, "support") == info


def test_adapter_values_that_agree_with_the_config_are_accepted(admin, tmp_path: Path) -> None:
    info = admin.registry.adapters.register(
        P,
        "support",
        base_model="base",
        path=_peft_dir(tmp_path / "a", target_modules="q_proj"),
        rank=8,
        alpha=16.0,
        target_modules=["q_proj"],
        method="qlora",
    )
    assert (info.rank, info.alpha, info.target_modules, info.method) == (
        8,
        16.0,
        ["q_proj"],
        "qlora",
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [("rank", 16), ("alpha", 32.0), ("target_modules", ["q_proj", "k_proj"])],
)
def test_adapter_values_that_disagree_with_the_config_are_refused(
    admin, tmp_path: Path, field: str, value: object
) -> None:
    with pytest.raises(ValidationError, match=r"adapter_config\.json") as caught:
        admin.registry.adapters.register(
            P, "support", base_model="base", path=_peft_dir(tmp_path / "a"), **{field: value}
        )
    assert caught.value.field == field
    assert admin.registry.adapters.list(P) == []


def test_a_directory_that_is_not_a_lora_adapter_is_refused(admin, tmp_path: Path) -> None:
    configs = {
        "no-config": None,
        "bad-json": "{not json",
        "not-an-object": '["a list"]',
        "not-lora": json.dumps({"peft_type": "PREFIX_TUNING", "r": 8}),
    }
    refused = {}
    for name, text in configs.items():
        folder = tmp_path / name
        folder.mkdir()
        (folder / "weights.bin").write_bytes(b"x")
        if text is not None:
            (folder / "adapter_config.json").write_text(text)
        with pytest.raises(ValidationError) as caught:
            admin.registry.adapters.register(P, "support", base_model="base", path=folder)
        refused[name] = caught.value.field
    assert refused == dict.fromkeys(configs, "path")
    assert admin.registry.adapters.list(P) == []


def test_adapter_without_files_needs_its_hyperparameters(admin) -> None:
    adapters = admin.registry.adapters
    with pytest.raises(ValidationError, match="rank, alpha and target_modules"):
        adapters.register(P, "meta", base_model="base", rank=8, alpha=16)
    with pytest.raises(ValidationError, match="at least 1"):
        adapters.register(P, "meta", base_model="base", rank=0, alpha=16, target_modules=["q"])
    with pytest.raises(ValidationError, match="method"):
        adapters.register(
            P, "meta", base_model="base", rank=8, alpha=16, target_modules=["q"], method="ia3"
        )
    info = adapters.register(P, "meta", base_model="base", rank=8, alpha=16, target_modules=["q"])
    assert (info.version, info.artifact, info.run) == (1, "", None)


def test_adapter_on_an_unknown_base_model_is_not_found(admin, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        admin.registry.adapters.register(
            P, "support", base_model="missing", path=_peft_dir(tmp_path / "a")
        )
    assert admin.registry.adapters.list(P) == []


def test_adapter_download_round_trip_is_byte_identical(admin, tmp_path: Path) -> None:
    source = _peft_dir(tmp_path / "a")
    (source / "tokenizer").mkdir()
    (source / "tokenizer" / "vocab.txt").write_text("hello\nworld\n")
    info = admin.registry.adapters.register(P, "support", base_model="base", path=source)
    dest = admin.registry.adapters.download(P, "support@1", tmp_path / "out" / "support")
    files = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert files == ["adapter_config.json", "adapter_model.safetensors", "tokenizer/vocab.txt"]
    for rel in files:
        assert (dest / rel).read_bytes() == (source / rel).read_bytes()
    admin.registry.artifacts.verify(info.artifact)


def test_download_of_an_adapter_without_files_is_refused(admin, tmp_path: Path) -> None:
    admin.registry.adapters.register(
        P, "meta", base_model="base", rank=8, alpha=16, target_modules=["q"]
    )
    with pytest.raises(ValidationError, match="without files"):
        admin.registry.adapters.download(P, "meta", tmp_path / "out")


@pytest.mark.parametrize(
    ("config", "given", "method"),
    [
        ({}, None, "lora"),
        ({}, "qlora", "qlora"),
        ({"use_dora": True}, None, "dora"),
        ({"use_dora": True}, "dora", "dora"),
        ({"use_rslora": True}, None, "rslora"),
    ],
)
def test_adapter_method_comes_from_its_config(
    admin, tmp_path: Path, config: dict[str, object], given: str | None, method: str
) -> None:
    info = admin.registry.adapters.register(
        P, "support", base_model="base", path=_peft_dir(tmp_path / "a", **config), method=given
    )
    assert info.method == method


@pytest.mark.parametrize(
    ("config", "given"),
    [({}, "dora"), ({}, "rslora"), ({"use_dora": True}, "lora"), ({"use_rslora": True}, "qlora")],
)
def test_a_method_the_config_contradicts_is_refused(
    admin, tmp_path: Path, config: dict[str, object], given: str
) -> None:
    with pytest.raises(ValidationError, match=r"adapter_config\.json") as caught:
        admin.registry.adapters.register(
            P, "support", base_model="base", path=_peft_dir(tmp_path / "a", **config), method=given
        )
    assert caught.value.field == "method"
    assert admin.registry.adapters.list(P) == []


def test_adapter_keeps_the_chat_template_and_tokenizer_it_was_trained_with(
    admin, tmp_path: Path
) -> None:
    chatml = (
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>{% endfor %}"
    )
    tokenizer = json.dumps({"model": {"type": "BPE", "vocab": {"a": 0}}}).encode()
    from_config = _peft_dir(tmp_path / "from-config")
    (from_config / "tokenizer.json").write_bytes(tokenizer)
    (from_config / "tokenizer_config.json").write_text(json.dumps({"chat_template": chatml}))
    from_jinja = _peft_dir(tmp_path / "from-jinja")
    (from_jinja / "chat_template.jinja").write_text("{{ messages[0].content }}")
    (from_jinja / "tokenizer_config.json").write_text(json.dumps({"chat_template": chatml}))
    named = _peft_dir(tmp_path / "named")
    templates = [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]
    (named / "tokenizer_config.json").write_text(json.dumps({"chat_template": templates}))
    adapters = admin.registry.adapters
    one = adapters.register(P, "one", base_model="base", path=from_config)
    two = adapters.register(P, "two", base_model="base", path=from_jinja)
    three = adapters.register(P, "three", base_model="base", path=named)
    bare = adapters.register(P, "bare", base_model="base", path=_peft_dir(tmp_path / "bare"))
    assert (one.chat_template, one.tokenizer_sha256) == (
        chatml,
        hashlib.sha256(tokenizer).hexdigest(),
    )
    assert (two.chat_template, two.tokenizer_sha256) == ("{{ messages[0].content }}", "")
    assert three.chat_template == "D"
    assert (bare.chat_template, bare.tokenizer_sha256, bare.lint) == ("", "", [])
    assert adapters.get(P, "one") == one


def _safetensors(path: Path, names: list[str]) -> None:
    from safetensors.numpy import save_file

    save_file({name: np.zeros((2, 2), dtype=np.float32) for name in names}, str(path))


def test_adapter_lint_names_what_vllm_would_refuse(admin, tmp_path: Path) -> None:
    adapters = admin.registry.adapters
    dora = adapters.register(
        P, "dora", base_model="base", path=_peft_dir(tmp_path / "dora", use_dora=True)
    )
    saved = _peft_dir(tmp_path / "saved", modules_to_save=["score"])
    head = _peft_dir(tmp_path / "head", target_modules=["q_proj", "lm_head"])
    resized = _peft_dir(tmp_path / "resized")
    _safetensors(
        resized / "adapter_model.safetensors",
        [
            "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight",
            "base_model.model.model.embed_tokens.weight",
        ],
    )
    lints = {
        name: adapters.register(P, name, base_model="base", path=path).lint
        for name, path in (("saved", saved), ("head", head), ("resized", resized))
    }
    [dora_problem] = dora.lint
    assert "DoRA" in dora_problem and "vllm#6983" in dora_problem
    [saved_problem] = lints["saved"]
    assert "modules_to_save" in saved_problem and "vllm#9280" in saved_problem
    assert "merge" in saved_problem
    [head_problem] = lints["head"]
    assert "lm_head" in head_problem
    [resized_problem] = lints["resized"]
    assert "base_model.model.model.embed_tokens.weight" in resized_problem
    assert "vocabulary" in resized_problem
    # Registered all the same, the lint kept with the version.
    assert adapters.get(P, "dora").lint == dora.lint
    assert [a.name for a in adapters.list(P)] == ["dora", "head", "resized", "saved"]


def test_adapter_without_files_is_linted_from_its_values(admin) -> None:
    info = admin.registry.adapters.register(
        P, "big", base_model="base", rank=1024, alpha=16, target_modules=["q_proj"], method="dora"
    )
    assert len(info.lint) == 2
    assert "DoRA" in info.lint[0] and "rank 1024" in info.lint[1]


def test_adapter_metadata_is_kept_and_must_be_json(admin, tmp_path: Path) -> None:
    settings = {"epochs": 3, "lr": 2e-4, "packing": False, "seed": [1, 2]}
    info = admin.registry.adapters.register(
        P, "support", base_model="base", path=_peft_dir(tmp_path / "a"), metadata=settings
    )
    assert info.metadata == settings == admin.registry.adapters.get(P, "support").metadata
    with pytest.raises(ValidationError, match="JSON") as caught:
        admin.registry.adapters.register(
            P, "other", base_model="base", path=_peft_dir(tmp_path / "b"), metadata={"x": object()}
        )
    assert caught.value.field == "metadata"


def test_metric_names_may_have_slashes(admin) -> None:
    with admin.registry.runs.start(P, "sft") as run:
        run.log({"train/loss": 0.5, "eval/accuracy": 0.9}, step=1)
        with pytest.raises(ValidationError, match="metric name"):
            run.log({"/loss": 1.0}, step=2)
    assert run.info().metrics == {"eval/accuracy": 0.9, "train/loss": 0.5}


def test_outsiders_store_nothing_and_probe_no_paths(platform, admin, tmp_path: Path) -> None:
    admin.projects.create("other-team")
    admin.projects.add_member("other-team", "eve", role="owner")
    eve = platform("eve")
    adapter = _peft_dir(tmp_path / "secret-adapter")
    before = set(admin.registry.artifacts.iter_digests())
    with pytest.raises(NotFoundError) as adapter_error:
        eve.registry.adapters.register(P, "x", base_model="base", path=adapter)
    assert set(admin.registry.artifacts.iter_digests()) == before
    with pytest.raises(NotFoundError) as existing_path:
        eve.registry.models.register(P, "m", source=str(tmp_path), license="mit")
    with pytest.raises(NotFoundError) as missing_path:
        eve.registry.models.register(P, "m", source=str(tmp_path / "nope"), license="mit")
    assert str(existing_path.value) == str(missing_path.value) == str(adapter_error.value)
