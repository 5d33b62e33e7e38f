"""Vendor fine-tuning (``backend: openai``) against the fake of OpenAI's fine-tuning API, on
a real platform: the DLP-treated rows are what the vendor receives; the job's events and
metrics land in the run; the resulting model is registered with lineage dataset → run →
model; a vendor failure, a cancellation or Ctrl-C ends the run accordingly; a wrong key,
a missing secret and bad rows or settings are refused before a run is left running (and
the last two before anything is uploaded). Polling sleeps through an injected no-op."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest

import finetune
from finetune._vendor import LICENSE, POLL_S, VendorFineTuneJob, train_vendor
from genai.errors import (
    BackendError,
    GenAIError,
    LicenseNotAllowed,
    NotFoundError,
    ValidationError,
)
from genai.settings import DEFAULT_LICENSES
from genai.testing import FakeFineTuningServer

P = "vendor-tuning"
KEY = "sk-vendor-key-0123456789"
# the database only stores what these tests check: registry calls are tested on both elsewhere
pytestmark = pytest.mark.sqlite_only


def qa_rows(n: int = 20) -> list[dict[str, Any]]:
    return [
        {
            "messages": [
                {"role": "user", "content": f"What is the code of item {i}?"},
                {"role": "assistant", "content": f"The code of item {i} is {i * 7 % 100}."},
            ]
        }
        for i in range(n)
    ]


@pytest.fixture
def settings(settings_factory):
    return settings_factory(license_allowlist=[*DEFAULT_LICENSES, LICENSE])


@pytest.fixture
def fake() -> Iterator[FakeFineTuningServer]:
    with FakeFineTuningServer(api_key=KEY, models=["gpt-4o-mini"]) as server:
        yield server


@pytest.fixture
def world(platform, fake):
    client = platform()
    client.projects.create(P)
    client.secrets.set(P, "vendor-key", KEY)
    client.registry.datasets.register(P, "qa", qa_rows(), splits={"train": 0.8, "test": 0.2})
    return client


def config(fake: FakeFineTuningServer, **overrides) -> finetune.FineTuneConfig:
    values = {
        "name": "qa-vendor",
        "base_model": "gpt-4o-mini",
        "dataset": "dataset:qa",
        "backend": "openai",
        "vendor_model": "gpt-4o-mini",
        "vendor_endpoint": fake.url + "/v1",
        "vendor_secret": "vendor-key",
        "epochs": 1,
        "batch_size": 4,
    }
    values.update(overrides)
    return finetune.load_config(values)


class Sleeps:
    """The injected sleep: records each pause and runs ``then(count)`` instead of waiting."""

    def __init__(self, then: Callable[[int], None] | None = None) -> None:
        self.calls: list[float] = []
        self.then = then

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        if self.then is not None:
            self.then(len(self.calls))


def run(client, cfg, sleep: Sleeps | None = None) -> VendorFineTuneJob:
    return train_vendor(client, P, cfg, progress=False, sleep=sleep or Sleeps(), clock=lambda: 0.0)


def retrievals(fake: FakeFineTuningServer, job_id: str) -> int:
    return fake.requests.count(("GET", f"/v1/fine_tuning/jobs/{job_id}"))


@pytest.mark.slow
def test_the_vendor_receives_only_dlp_treated_rows_and_the_run_records_the_job(world, fake) -> None:
    from genai.dlp import Policy, ProjectPolicies

    ProjectPolicies(world).set(P, Policy())
    rows = [
        {
            "messages": [
                {
                    "role": "user",
                    "content": f"Email bob.smith{i}@example.com or call +1 415 555 01{i:02d}",
                },
                {"role": "assistant", "content": f"I wrote to bob.smith{i}@example.com."},
            ]
        }
        for i in range(20)
    ]
    world.registry.datasets.register(P, "mail", rows, splits={"train": 0.8, "test": 0.2})
    sleeps = Sleeps()
    job = run(world, config(fake, dataset="dataset:mail", epochs=2), sleeps)

    vendor_job = fake.job()
    uploaded = [vendor_job.training_file, vendor_job.validation_file]
    assert None not in uploaded
    sent = "".join(fake.content(f).decode() for f in uploaded)
    assert "@example.com" not in sent and "bob.smith" not in sent and "555 01" not in sent
    assert "EMAIL_ADDRESS" in sent and "PHONE_NUMBER" in sent
    assert sum(len(fake.rows(f)) for f in uploaded) == 20

    info = job.run
    (treated,) = info.inputs  # the vendor's base model is not registered here: no model edge
    assert treated.startswith("dataset:mail-dlp@")
    assert (info.status, info.kind) == ("finished", "fine-tuning")
    assert info.params["config"]["backend"] == "openai"
    vendor = info.params["vendor"]
    assert vendor["job"] == vendor_job.id == job.vendor_job
    assert (vendor["training_file"], vendor["validation_file"]) == tuple(uploaded)
    assert vendor["hyperparameters"] == {
        "n_epochs": 2,
        "batch_size": 4,
        "learning_rate_multiplier": "auto",
    }
    assert KEY not in json.dumps(info.params)

    metrics = [e["data"] for e in vendor_job.events if e["type"] == "metrics"]
    assert [m["step"] for m in metrics] == list(range(1, vendor_job.total_steps + 1))
    loss = {p.step: p.value for p in job.metrics("loss")}
    assert loss == {m["step"]: m["train_loss"] for m in metrics}
    assert {p.step: p.value for p in job.metrics("eval_loss")} == {
        m["step"]: m["valid_loss"] for m in metrics
    }
    assert len(job.metrics("accuracy")) == len(metrics)
    recorded = [
        json.loads(line) for line in (job.output_dir / "events.jsonl").read_text().splitlines()
    ]
    assert [e["id"] for e in recorded] == [e["id"] for e in vendor_job.events]
    assert json.loads((job.output_dir / "job.json").read_text())["status"] == "succeeded"

    model = job.model
    assert model is not None and job.adapter is None
    assert model.source == f"openai:{vendor_job.fine_tuned_model}"
    assert (model.name, model.license) == ("qa-vendor", LICENSE)
    assert model.metadata["vendor"]["job"] == vendor_job.id
    ancestors = world.registry.lineage(P, model.ref).ancestors
    assert {f"run:{info.id}", treated, "dataset:mail@1"} <= set(ancestors)
    with pytest.raises(ValidationError, match="hosted by a vendor"):
        world.registry.models.local_path(P, model.ref)

    assert sleeps.calls == [POLL_S] * (retrievals(fake, vendor_job.id) - 1)
    (used,) = world.audit.list(P, action="secret.use")
    assert used.resource == "secret:vendor-key"


def test_finetune_train_dispatches_to_the_vendor_with_lineage_to_a_registered_base(
    world, fake, capsys
) -> None:
    fake.steps_per_poll = None  # the job ends at the first look: nothing sleeps
    world.registry.models.register(P, "gpt-4o-mini", source="openai:gpt-4o-mini", license=LICENSE)
    cfg = {
        "name": "qa-vendor",
        "adapter_name": "support",
        "base_model": "model:gpt-4o-mini",
        "dataset": "dataset:qa",
        "backend": "openai",
        "vendor_model": "gpt-4o-mini",
        "vendor_endpoint": fake.url + "/v1",
        "vendor_secret": "vendor-key",
        "epochs": 2,
        "seed": 5,
    }
    job = finetune.train(world, P, cfg)
    assert isinstance(job, VendorFineTuneJob) and job.run.status == "finished"
    assert job.run.inputs == ["dataset:qa@1", "model:gpt-4o-mini@1"]
    vendor_job = fake.job()
    assert (vendor_job.seed, vendor_job.suffix) == (5, "support")
    assert vendor_job.hyperparameters == {
        "n_epochs": 2,
        "batch_size": 1,  # not set: the vendor's choice
        "learning_rate_multiplier": 2.0,
    }
    assert job.run.params["vendor"]["hyperparameters"]["batch_size"] == "auto"
    assert job.model is not None
    assert job.model.ref == "model:support@1"
    assert job.model.metadata["hyperparameters"] == vendor_job.hyperparameters
    assert "The job has successfully completed" in capsys.readouterr().err


def test_a_vendor_failure_fails_the_run_with_the_vendors_message(world, fake) -> None:
    fake.fail_next("The vendor's GPU caught fire", at_step=3, code="server_error")
    with pytest.raises(BackendError, match="GPU caught fire") as caught:
        run(world, config(fake))
    assert "server_error" in caught.value.message
    (info,) = world.registry.runs.list(P)
    assert info.status == "failed" and f"run:{info.id}" in caught.value.message
    assert [p.step for p in world.registry.runs.metrics(P, info.id, key="loss")] == [1, 2]
    assert world.registry.models.list(P) == []
    events = (finetune._run.run_dir(world, P, info.id) / "events.jsonl").read_text()
    assert "GPU caught fire" in events

    # the vendor's own validation: too few training rows
    world.registry.datasets.register(P, "tiny", qa_rows(5))
    with pytest.raises(BackendError, match="must have at least 10 examples"):
        run(world, config(fake, dataset="dataset:tiny", name="tiny"))
    assert world.registry.runs.list(P, name="tiny")[0].status == "failed"


def test_a_wrong_key_is_refused_before_any_run_is_opened(world, fake) -> None:
    world.secrets.set(P, "vendor-key", "sk-not-the-right-key-42")
    with pytest.raises(BackendError) as caught:
        run(world, config(fake))
    error = caught.value
    assert error.status == 401 and "vendor-key" in error.message
    assert "genai secret set vendor-key" in error.message
    assert "sk-not-the-right-key-42" not in error.message
    assert world.registry.runs.list(P) == []
    assert fake.files == {} and fake.jobs == {}


def test_settings_and_rows_the_vendor_cannot_take_fail_before_anything_is_sent(world, fake) -> None:
    world.registry.datasets.register(P, "texts", [{"text": f"line {i}"} for i in range(12)])
    odd = [{**row, "colour": "red"} for row in qa_rows(12)]
    world.registry.datasets.register(P, "odd", odd)
    thinking = qa_rows(12)
    thinking[3]["messages"][1]["thinking"] = "hmm"
    world.registry.datasets.register(P, "thinking", thinking)
    cases: list[tuple[dict[str, object], type[GenAIError], str]] = [
        ({"dataset": "dataset:texts"}, ValidationError, "text rows"),
        ({"dataset": "dataset:odd"}, ValidationError, "unknown field colour"),
        ({"dataset": "dataset:thinking"}, ValidationError, "row 4: message 2 has field thinking"),
        ({"rank": 16, "packing": True}, ValidationError, "rank=16, packing=True"),
        ({"learning_rate": 1e-5}, ValidationError, "learning_rate=1e-05"),
        ({"loss_on": "all"}, ValidationError, "loss_on='all'"),
        ({"epochs": 1.5}, ValidationError, "whole epochs"),
        ({"train_split": "dev"}, ValidationError, "has no split 'dev'"),
        ({"base_model": "model:nope"}, NotFoundError, "model:nope"),
        ({"dataset": "dataset:nope"}, NotFoundError, "dataset:nope"),
        ({"vendor_endpoint": None}, ValidationError, "needs vendor_endpoint"),
        ({"vendor_secret": None}, ValidationError, "needs vendor_secret"),
        ({"vendor_secret": "unset-key"}, NotFoundError, "has no secret 'unset-key'"),
    ]
    for overrides, kind, message in cases:
        with pytest.raises(kind) as caught:
            run(world, config(fake, **overrides))
        assert message in caught.value.message, overrides
    assert fake.requests == []
    assert world.registry.runs.list(P) == []


def test_a_platform_that_allows_no_vendor_licence_refuses_before_uploading(
    settings_factory, tmp_path, fake
) -> None:
    import genai

    settings = settings_factory(home=tmp_path / "strict")
    genai.init(settings, admin="admin")
    with genai.connect(settings, user="admin") as client:
        client.projects.create(P)
        client.secrets.set(P, "vendor-key", KEY)
        client.registry.datasets.register(P, "qa", qa_rows())
        with pytest.raises(LicenseNotAllowed, match="GENAI_LICENSE_ALLOWLIST"):
            run(client, config(fake))
        assert fake.requests == []
        fake.steps_per_poll = None
        job = run(client, config(fake, register_adapter=False))  # nothing to register
        assert job.model is None and job.run.status == "finished"
        assert client.registry.models.list(P) == []


def test_ctrl_c_cancels_the_vendors_job_and_the_run(world, fake) -> None:
    def interrupt(count: int) -> None:
        if count == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(world, config(fake), Sleeps(interrupt))
    assert fake.job().status == "cancelled"
    (info,) = world.registry.runs.list(P)
    assert info.status == "cancelled"
    assert world.registry.models.list(P) == []


def test_a_job_cancelled_at_the_vendor_cancels_the_run(world, fake) -> None:
    def cancel_elsewhere(count: int) -> None:
        if count == 2:
            with openai.OpenAI(base_url=fake.url + "/v1", api_key=KEY) as other:
                other.fine_tuning.jobs.cancel(fake.job().id)

    with pytest.raises(BackendError, match="was cancelled at the vendor"):
        run(world, config(fake), Sleeps(cancel_elsewhere))
    (info,) = world.registry.runs.list(P)
    assert info.status == "cancelled"


# ------------------------------------------------------------------ the registry's vendor source


def test_models_register_a_vendor_model_with_the_run_that_produced_it(world) -> None:
    models = world.registry.models
    active = world.registry.runs.start(P, "made-elsewhere", datasets=["dataset:qa"])
    source = "openai:ft:gpt-4o-mini-2024-07-18:acme::abc123"
    info = models.register(P, "tuned", source=source, license=LICENSE, run=active.id)
    assert info.source == source
    assert world.registry.lineage(P, info.ref).ancestors == [f"run:{active.id}", "dataset:qa@1"]
    with pytest.raises(ValidationError, match="hosted by a vendor") as caught:
        models.local_path(P, info.ref)
    assert "ft:gpt-4o-mini-2024-07-18:acme::abc123" in caught.value.message
    for bad in ("openai:", "openai: two words", "openai:-leading-dash"):
        with pytest.raises(ValidationError, match="openai:MODEL_ID"):
            models.register(P, "bad", source=bad, license=LICENSE)
    with pytest.raises(NotFoundError):
        models.register(P, "orphan", source=source, license=LICENSE, run="000000000000")
    assert [m.ref for m in models.list(P)] == ["model:tuned@1"]
