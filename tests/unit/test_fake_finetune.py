"""``genai.testing.FakeFineTuningServer``: OpenAI's fine-tuning protocol as the official SDK
speaks it — files (multipart, JSONL checked, bytes kept), jobs that advance one stage per
retrieval, events listed newest first with ``after`` pages, scripted failures, cancel, and
the bearer key. The SDK talks to the fake's ASGI app in process; one test serves it on
127.0.0.1. The rows ``finetune`` converts for a vendor pass the fake's checks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, cast

import httpx
import openai
import pytest
from fastapi.testclient import TestClient

from finetune._vendor import openai_rows
from genai.errors import ValidationError
from genai.testing import FakeFineTuningServer

KEY = "sk-fake-test"


def chat_rows(n: int = 12) -> list[dict[str, Any]]:
    return [
        {
            "messages": [
                {"role": "user", "content": f"question {i}"},
                {"role": "assistant", "content": f"answer number {i}"},
            ]
        }
        for i in range(n)
    ]


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def as_http_client(http: TestClient) -> httpx.Client:
    """``http`` typed as the SDK's ``http_client`` annotation wants it. Starlette's TestClient
    is an ``httpx2.Client``, not an ``httpx.Client``; the SDK takes either at runtime (its
    constructor checks ``is_httpx2_sync_client``) but annotates ``http_client`` as
    ``httpx.Client`` only."""
    return cast(httpx.Client, http)


def error_body(error: openai.APIStatusError) -> dict[str, Any]:
    """The error's JSON body: the SDK keeps the response's ``error`` object, a dict."""
    body = error.body
    assert isinstance(body, dict), body
    return body


@pytest.fixture
def fake() -> FakeFineTuningServer:
    return FakeFineTuningServer(api_key=KEY, clock=lambda: 1_700_000_000.0)


@pytest.fixture
def sdk(fake: FakeFineTuningServer) -> Iterator[openai.OpenAI]:
    """The official SDK on the fake's app, in process (no socket)."""
    with TestClient(fake.app) as http:
        yield openai.OpenAI(
            base_url="http://testserver/v1",
            api_key=KEY,
            http_client=as_http_client(http),
            max_retries=0,
        )


def upload(sdk: openai.OpenAI, rows: list[dict[str, Any]], name: str = "train.jsonl") -> str:
    return sdk.files.create(file=(name, jsonl(rows)), purpose="fine-tune").id


def run_to_end(sdk: openai.OpenAI, job_id: str, *, limit: int = 50) -> list[str]:
    statuses: list[str] = []
    for _ in range(limit):
        job = sdk.fine_tuning.jobs.retrieve(job_id)
        statuses.append(job.status)
        if job.status in ("succeeded", "failed", "cancelled"):
            return statuses
    raise AssertionError(f"the job did not end: {statuses}")


def test_an_upload_keeps_its_bytes_and_answers_as_openai_does(fake, sdk) -> None:
    data = jsonl(chat_rows())
    file = sdk.files.create(file=("train.jsonl", data), purpose="fine-tune")
    assert (file.object, file.purpose, file.status, file.filename) == (
        "file",
        "fine-tune",
        "processed",
        "train.jsonl",
    )
    assert file.bytes == len(data) and fake.content(file.id) == data
    assert fake.rows(file.id) == chat_rows()
    assert sdk.files.retrieve(file.id) == file
    assert sdk.files.content(file.id).read() == data
    assert sdk.files.delete(file.id).deleted
    with pytest.raises(openai.NotFoundError, match="No such File"):
        sdk.files.retrieve(file.id)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ({"messages": [{"role": "user", "content": "hi"}]}, "no assistant message"),
        ({"messages": []}, "non-empty list"),
        ({"prompt": "a", "completion": "b"}, "additional properties"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "invalid role"),
        (
            {"messages": [{"role": "user", "content": "x", "weight": 0}]},
            "weight that is not 0 or 1 on an assistant",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "x"},
                    {
                        "role": "assistant",
                        "tool_calls": [{"id": "1", "function": {"name": "f", "arguments": {}}}],
                    },
                ]
            },
            "arguments are not a JSON string",
        ),
        (
            {"messages": [{"role": "assistant", "content": "x", "thinking": "y"}]},
            "unrecognized keys",
        ),
    ],
)
def test_an_upload_that_is_not_chat_fine_tuning_data_is_refused(sdk, line, problem) -> None:
    good = chat_rows(2)
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.files.create(file=("t.jsonl", jsonl([*good, line])), purpose="fine-tune")
    assert caught.value.status_code == 400
    body = error_body(caught.value)
    assert body["code"] == "invalid_file_format"
    assert "line 3" in body["message"] and problem in body["message"]


def test_a_job_advances_one_stage_per_retrieval_and_names_its_model(fake, sdk) -> None:
    training, validation = upload(sdk, chat_rows(12)), upload(sdk, chat_rows(10), "v.jsonl")
    job = sdk.fine_tuning.jobs.create(
        model="gpt-4o-mini",
        training_file=training,
        validation_file=validation,
        method={"type": "supervised", "supervised": {"hyperparameters": {"batch_size": 4}}},
        seed=7,
        suffix="support",
    )
    assert job.status == "validating_files" and job.fine_tuned_model is None
    assert job.hyperparameters.batch_size == 4 and job.hyperparameters.n_epochs == 3  # auto
    assert fake.job(job.id).total_steps == 9  # ceil(12 / 4) * 3
    statuses = run_to_end(sdk, job.id)
    assert statuses == ["queued", "running", *["running"] * 4, "succeeded"]  # 2 steps a poll
    done = sdk.fine_tuning.jobs.retrieve(job.id)
    assert done.fine_tuned_model == f"ft:gpt-4o-mini:fake-org:support:{job.id[6:]}"
    assert done.seed == 7 and done.trained_tokens == 3 * 12 * 3 and done.finished_at
    results = sdk.files.content(done.result_files[0]).text
    assert results.splitlines()[0] == "step,train_loss" and len(results.splitlines()) == 10
    assert sdk.fine_tuning.jobs.list().data[0].id == job.id


def test_events_are_listed_newest_first_in_pages_after_a_cursor(fake, sdk) -> None:
    fake.steps_per_poll = None  # the whole job in one retrieval
    job = sdk.fine_tuning.jobs.create(model="m", training_file=upload(sdk, chat_rows(12)))
    assert sdk.fine_tuning.jobs.retrieve(job.id).status == "succeeded"
    first = sdk.fine_tuning.jobs.list_events(job.id, limit=5)
    assert len(first.data) == 5 and first.has_more
    assert first.data[0].message == "The job has successfully completed"
    second = sdk.fine_tuning.jobs.list_events(job.id, limit=5, after=first.data[-1].id)
    assert second.data[0].created_at <= first.data[-1].created_at
    everything = list(sdk.fine_tuning.jobs.list_events(job.id, limit=5))  # the SDK pages on
    assert [e.id for e in everything] == [e["id"] for e in reversed(fake.job(job.id).events)]
    metrics = [e for e in everything if e.type == "metrics"]
    assert len(metrics) == 36  # 12 rows, batch 1, 3 epochs
    last = metrics[0].data
    assert last["step"] == 36 and last["total_steps"] == 36
    assert set(last) == {"step", "train_loss", "total_steps", "train_mean_token_accuracy"}
    losses = [e.data["train_loss"] for e in reversed(metrics)]
    assert losses == sorted(losses, reverse=True)
    assert everything[-1].message == f"Created fine-tuning job: {job.id}"


def test_a_scripted_failure_fails_the_next_job_at_its_step(fake, sdk) -> None:
    fake.fail_next("The vendor's GPU caught fire", at_step=3, code="server_error")
    training = upload(sdk, chat_rows(12))
    job = sdk.fine_tuning.jobs.create(
        model="m",
        training_file=training,
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 1}}},
    )
    assert run_to_end(sdk, job.id)[-1] == "failed"
    failed = sdk.fine_tuning.jobs.retrieve(job.id)
    assert failed.error.message == "The vendor's GPU caught fire"
    assert failed.error.code == "server_error" and failed.fine_tuned_model is None
    steps = [e.data["step"] for e in sdk.fine_tuning.jobs.list_events(job.id) if e.data]
    assert sorted(steps) == [1, 2]
    # the script was for one job: the next one succeeds
    other = sdk.fine_tuning.jobs.create(model="m", training_file=training)
    assert run_to_end(sdk, other.id)[-1] == "succeeded"


def test_a_training_file_under_the_minimum_fails_validation(fake, sdk) -> None:
    job = sdk.fine_tuning.jobs.create(model="m", training_file=upload(sdk, chat_rows(3)))
    assert run_to_end(sdk, job.id) == ["failed"]
    error = sdk.fine_tuning.jobs.retrieve(job.id).error
    assert error.code == "invalid_training_file" and error.param == "training_file"
    assert "3 example(s), but must have at least 10" in error.message


def test_creating_a_job_checks_its_files_model_and_hyperparameters(fake, sdk) -> None:
    fake.models = ("gpt-4o-mini",)
    training = upload(sdk, chat_rows())
    results = sdk.files.create(file=("r.csv", b"a,b\n"), purpose="batch").id
    bad = [
        ({"model": "gpt-9"}, "model_not_available"),
        ({"training_file": "file-nope"}, "invalid_training_file"),
        ({"training_file": results}, "invalid_training_file"),
        ({"validation_file": "file-nope"}, "invalid_validation_file"),
        ({"hyperparameters": {"n_epochs": 1.5}}, "invalid_hyperparameters"),
        ({"hyperparameters": {"batch_size": 0}}, "invalid_hyperparameters"),
    ]
    for change, code in bad:
        args = {"model": "gpt-4o-mini", "training_file": training, **change}
        with pytest.raises(openai.BadRequestError) as caught:
            sdk.fine_tuning.jobs.create(**args)
        assert error_body(caught.value)["code"] == code, change
    with pytest.raises(openai.NotFoundError):
        sdk.fine_tuning.jobs.retrieve("ftjob-nope")
    assert fake.jobs == {}
    # the deprecated top-level hyperparameters are read too
    job = sdk.fine_tuning.jobs.create(
        model="gpt-4o-mini", training_file=training, hyperparameters={"n_epochs": 2}
    )
    assert job.hyperparameters.n_epochs == 2


def test_a_job_is_cancelled_until_it_ends(fake, sdk) -> None:
    training = upload(sdk, chat_rows())
    job = sdk.fine_tuning.jobs.create(model="m", training_file=training)
    sdk.fine_tuning.jobs.retrieve(job.id)
    cancelled = sdk.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status == "cancelled" and cancelled.fine_tuned_model is None
    assert sdk.fine_tuning.jobs.retrieve(job.id).status == "cancelled"  # it moves no more
    with pytest.raises(
        openai.BadRequestError, match=r"ended \(cancelled\): it cannot be cancelled"
    ):
        sdk.fine_tuning.jobs.cancel(job.id)
    assert fake.calls("POST", f"/v1/fine_tuning/jobs/{job.id}/cancel") == 2


def test_every_call_needs_the_key(fake) -> None:
    with TestClient(fake.app) as http:
        wrong = openai.OpenAI(
            base_url="http://testserver/v1",
            api_key="sk-wrong-key",
            http_client=as_http_client(http),
        )
        with pytest.raises(openai.AuthenticationError) as caught:
            wrong.files.create(file=("t.jsonl", jsonl(chat_rows())), purpose="fine-tune")
        body = error_body(caught.value)
        assert body["code"] == "invalid_api_key"
        assert "sk-wrong-key" not in body["message"]
        with pytest.raises(openai.AuthenticationError):
            wrong.fine_tuning.jobs.list()
    assert fake.files == {}


def test_as_a_context_manager_it_serves_on_a_free_loopback_port() -> None:
    with FakeFineTuningServer(api_key=KEY, steps_per_poll=None) as fake:
        assert fake.url.startswith("http://127.0.0.1:")
        sdk = openai.OpenAI(base_url=fake.url + "/v1", api_key=KEY, max_retries=0)
        with sdk:
            training = upload(sdk, chat_rows())
            job = sdk.fine_tuning.jobs.create(model="m", training_file=training)
            assert sdk.fine_tuning.jobs.retrieve(job.id).status == "succeeded"
        url = fake.url
        with pytest.raises(RuntimeError, match="served already"):
            fake.__enter__()
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/v1/files", timeout=2)


# ------------------------------------------------------------------ finetune's conversion


def test_every_row_format_converts_to_lines_the_vendor_accepts(fake, sdk) -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    chat = {
        "messages": [
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": "call f"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": "2"},
            {"role": "assistant", "content": "it is 2"},
        ],
        "tools": tools,
        "id": "row-1",
    }
    lines, report = openai_rows([chat], "auto", what="chat")
    assert report.format == "chat"
    (line,) = lines
    assert line["tools"] == tools and "id" not in line
    assert line["messages"][0]["role"] == "system"
    assert line["messages"][2]["tool_calls"][0]["function"]["arguments"] == '{"x": 1}'
    assert all("weight" not in m for m in line["messages"])

    alpaca = {"instruction": "Add", "input": "1 and 2", "output": "3", "system": "maths"}
    lines, _ = openai_rows([alpaca], "auto", what="alpaca")
    assert lines == [
        {
            "messages": [
                {"role": "system", "content": "maths"},
                {"role": "user", "content": "Add\n\n1 and 2"},
                {"role": "assistant", "content": "3"},
            ]
        }
    ]

    pair = {"prompt": "Capital of France?", "completion": "Paris"}
    lines, _ = openai_rows([pair], "auto", what="pairs")
    assert lines[0]["messages"] == [
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris"},
    ]

    conversational = {
        "prompt": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "bye?"},
        ],
        "completion": [{"role": "assistant", "content": "bye"}],
    }
    lines, _ = openai_rows([conversational], "auto", what="conversational")
    weights = [m.get("weight") for m in lines[0]["messages"]]
    assert weights == [None, 0, None, None]  # the prompt's assistant turn is not trained
    file_id = upload(sdk, [line, *lines])  # the fake checks each line as OpenAI does
    assert len(fake.rows(file_id)) == 2


def test_rows_the_vendor_cannot_train_are_refused() -> None:
    with pytest.raises(ValidationError, match="text rows"):
        openai_rows([{"text": "just text"}], "auto", what="texts")
    odd = {
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello", "thinking": "hmm"},
        ]
    }
    with pytest.raises(ValidationError, match=r"row 1: message 2 has field thinking"):
        openai_rows([odd], "auto", what="odd")
    with pytest.raises(ValidationError, match="unknown field colour"):
        openai_rows([{"prompt": "a", "completion": "b", "colour": "red"}], "auto", what="x")
