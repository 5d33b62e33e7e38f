"""``FakeFineTuningServer``: OpenAI's fine-tuning API faked on 127.0.0.1, for tests of
clients that fine-tune through an OpenAI-compatible vendor (``finetune`` with
``backend: openai``, or the ``openai`` SDK directly).

It serves what the official SDK calls: ``POST /v1/files`` (multipart, ``purpose``
``fine-tune``: each JSONL line is checked as OpenAI checks chat fine-tuning data, and the
bytes are kept for the test to read), ``GET /v1/files[/{id}[/content]]``, ``DELETE
/v1/files/{id}``, ``POST /v1/fine_tuning/jobs``, ``GET /v1/fine_tuning/jobs[/{id}]``,
``GET /v1/fine_tuning/jobs/{id}/events`` (OpenAI's list: newest first, ``after``,
``limit``, ``has_more``) and ``POST /v1/fine_tuning/jobs/{id}/cancel``. Every ``/v1`` call
needs ``Authorization: Bearer <api_key>`` (401 otherwise), and errors have OpenAI's body.

A job moves only when it is retrieved (``GET /v1/fine_tuning/jobs/{id}``), one stage per
retrieval, so a test that polls decides how far it goes: ``validating_files`` → ``queued``
→ ``running`` → ``steps_per_poll`` training steps per retrieval (``None``: the whole job
in one retrieval, validation and every step included; a ``metrics`` event each,
with OpenAI's ``step``, ``train_loss``, ``train_mean_token_accuracy``, ``valid_loss``…) →
``succeeded`` with ``fine_tuned_model`` ``ft:<model>:<organization>:<suffix>:<id>``. A job
has ``ceil(training rows / batch_size) * n_epochs`` steps. ``fake.fail_next(message,
at_step=k)`` makes the next job fail at step ``k`` (0: while validating its files); a
training file of fewer than ``min_examples`` rows fails validation as OpenAI's does.

    with FakeFineTuningServer(api_key="sk-test") as fake:
        vendor = openai.OpenAI(base_url=fake.url + "/v1", api_key="sk-test")
        file = vendor.files.create(file=("train.jsonl", data), purpose="fine-tune")
        job = vendor.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=file.id)
        fake.content(file.id)  # the bytes uploaded

Needs the ``serve`` extra (FastAPI and uvicorn).
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from genai.testing._fake_finetune_wire import Refusal as _Refusal
from genai.testing._fake_finetune_wire import (
    check_chat_jsonl,
    hyperparameters,
    multipart,
    page,
    words,
)
from genai.testing._served import Served

__all__ = ["FakeFile", "FakeFineTuningServer", "FakeJob", "ScriptedFailure", "check_chat_jsonl"]

TERMINAL = ("succeeded", "failed", "cancelled")


@dataclass
class FakeFile:
    id: str
    filename: str
    purpose: str
    content: bytes
    created_at: int
    examples: int = 0  # JSONL lines of a fine-tune file

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.content),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "expires_at": None,
            "status_details": None,
        }


@dataclass(frozen=True)
class ScriptedFailure:
    message: str
    at_step: int = 0  # 0: while validating the files
    code: str = "server_error"


@dataclass
class FakeJob:
    id: str
    model: str
    training_file: str
    validation_file: str | None
    suffix: str | None
    seed: int
    hyperparameters: dict[str, Any]
    created_at: int
    total_steps: int
    trained_tokens: int
    failure: ScriptedFailure | None = None
    status: str = "validating_files"
    step: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)  # oldest first
    error: dict[str, Any] | None = None
    fine_tuned_model: str | None = None
    finished_at: int | None = None
    result_files: list[str] = field(default_factory=list)
    metadata: dict[str, str] | None = None

    def to_json(self, organization: str) -> dict[str, Any]:
        done = self.status == "succeeded"
        return {
            "id": self.id,
            "object": "fine_tuning.job",
            "created_at": self.created_at,
            "error": self.error,
            "fine_tuned_model": self.fine_tuned_model,
            "finished_at": self.finished_at,
            "hyperparameters": dict(self.hyperparameters),
            "method": {
                "type": "supervised",
                "supervised": {"hyperparameters": dict(self.hyperparameters)},
            },
            "model": self.model,
            "organization_id": organization,
            "result_files": list(self.result_files),
            "seed": self.seed,
            "status": self.status,
            "trained_tokens": self.trained_tokens if done else None,
            "training_file": self.training_file,
            "validation_file": self.validation_file,
            "estimated_finish": None,
            "integrations": [],
            "metadata": self.metadata,
            "user_provided_suffix": self.suffix,
        }


class FakeFineTuningServer(Served):
    """The state and the ASGI ``app`` of one fake vendor; mutate attributes between calls.

    Use it as a context manager to serve it (``with FakeFineTuningServer() as fake``; the
    SDK's ``base_url`` is ``fake.url + "/v1"``), or serve ``fake.app`` yourself with
    :func:`running_server`.
    """

    def __init__(
        self,
        *,
        api_key: str = "sk-fake-finetune",
        organization: str = "fake-org",
        models: Sequence[str] | None = None,
        steps_per_poll: int | None = 2,
        min_examples: int = 10,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.api_key = api_key
        self.organization = organization
        self.models = None if models is None else tuple(models)  # None: any base model
        self.steps_per_poll = steps_per_poll
        self.min_examples = min_examples
        self.files: dict[str, FakeFile] = {}
        self.jobs: dict[str, FakeJob] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path), oldest first
        self.url = ""  # http://127.0.0.1:PORT while served
        self.app = self._build()
        self._clock = clock
        self._lock = threading.Lock()
        self._counter = 0
        self._next_failure: ScriptedFailure | None = None

    # ------------------------------------------------------------ for tests

    def fail_next(self, message: str, *, at_step: int = 0, code: str = "server_error") -> None:
        """The next job created fails with ``message``: at training step ``at_step`` (after
        the steps before it), or while validating its files (0)."""
        self._next_failure = ScriptedFailure(message, at_step, code)

    def content(self, file_id: str) -> bytes:
        """The bytes uploaded as ``file_id``."""
        with self._lock:
            return self.files[file_id].content

    def rows(self, file_id: str) -> list[dict[str, Any]]:
        """The JSON lines uploaded as ``file_id``."""
        return [json.loads(line) for line in self.content(file_id).splitlines() if line.strip()]

    def job(self, job_id: str | None = None) -> FakeJob:
        """A job (the newest without ``job_id``)."""
        with self._lock:
            return self.jobs[job_id] if job_id else list(self.jobs.values())[-1]

    def calls(self, method: str, prefix: str) -> int:
        """How many ``method`` requests to paths starting with ``prefix`` arrived."""
        return sum(m == method and p.startswith(prefix) for m, p in self.requests)

    # ------------------------------------------------------------ the app

    def _build(self) -> Any:
        api = FastAPI()
        api.post("/v1/files")(self._upload)
        api.get("/v1/files")(self._list_files)
        api.get("/v1/files/{file_id}")(self._file)
        api.get("/v1/files/{file_id}/content")(self._file_content)
        api.delete("/v1/files/{file_id}")(self._delete_file)
        api.post("/v1/fine_tuning/jobs")(self._create)
        api.get("/v1/fine_tuning/jobs")(self._list_jobs)
        api.get("/v1/fine_tuning/jobs/{job_id}")(self._retrieve)
        api.get("/v1/fine_tuning/jobs/{job_id}/events")(self._events)
        api.post("/v1/fine_tuning/jobs/{job_id}/cancel")(self._cancel)

        async def app(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return await api(scope, receive, send)
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            self.requests.append((scope["method"], scope["path"]))
            if scope["path"].startswith("/v1") and (
                headers.get("authorization") != f"Bearer {self.api_key}"
            ):
                given = headers.get("authorization", "").removeprefix("Bearer ")
                shown = f"{given[:3]}***{given[-2:]}" if len(given) > 6 else "***"
                refusal = _Refusal(
                    401, f"Incorrect API key provided: {shown}.", code="invalid_api_key"
                )
                return await refusal.response()(scope, receive, send)
            return await api(scope, receive, send)

        return app

    def _answer(self, build: Callable[[], Any]) -> Response:
        try:
            with self._lock:
                return JSONResponse(build())
        except _Refusal as refusal:
            return refusal.response()

    def _new_id(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}-fake{self._counter:06d}"

    def _now(self) -> int:
        return int(self._clock())

    # ------------------------------------------------------------ files

    async def _upload(self, request: Request) -> Response:
        body = await request.body()
        content_type = request.headers.get("content-type", "")

        def build() -> dict[str, Any]:
            fields, uploaded = multipart(content_type, body)
            purpose = fields.get("purpose", "")
            if uploaded is None:
                raise _Refusal(400, "Missing required parameter: 'file'.", code=None, param="file")
            if not purpose:
                raise _Refusal(400, "Missing required parameter: 'purpose'.", code=None)
            filename, content = uploaded
            examples = 0
            if purpose == "fine-tune":
                try:
                    examples = len(check_chat_jsonl(content))
                except ValueError as error:
                    raise _Refusal(
                        400,
                        f"Invalid file format for Fine-Tuning API: {error}",
                        code="invalid_file_format",
                        param="file",
                    ) from None
            upload = FakeFile(
                self._new_id("file"), filename, purpose, content, self._now(), examples
            )
            self.files[upload.id] = upload
            return upload.to_json()

        return self._answer(build)

    async def _list_files(self) -> Response:
        return self._answer(
            lambda: {"object": "list", "data": [f.to_json() for f in self.files.values()]}
        )

    def _known_file(self, file_id: str) -> FakeFile:
        found = self.files.get(file_id)
        if found is None:
            raise _Refusal(404, f"No such File object: {file_id}", code=None, param="id")
        return found

    async def _file(self, file_id: str) -> Response:
        return self._answer(lambda: self._known_file(file_id).to_json())

    async def _file_content(self, file_id: str) -> Response:
        try:
            with self._lock:
                content = self._known_file(file_id).content
        except _Refusal as refusal:
            return refusal.response()
        return Response(content, media_type="application/octet-stream")

    async def _delete_file(self, file_id: str) -> Response:
        def build() -> dict[str, Any]:
            self._known_file(file_id)
            del self.files[file_id]
            return {"id": file_id, "object": "file", "deleted": True}

        return self._answer(build)

    # ------------------------------------------------------------ jobs

    async def _create(self, request: Request) -> Response:
        body = await request.json()
        return self._answer(lambda: self._new_job(body).to_json(self.organization))

    def _new_job(self, body: dict[str, Any]) -> FakeJob:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _Refusal(400, "Missing required parameter: 'model'.", code=None, param="model")
        if self.models is not None and model not in self.models:
            raise _Refusal(
                400,
                f"Model {model} is not available for fine-tuning or does not exist.",
                code="model_not_available",
                param="model",
            )
        training = self._fine_tune_file(body.get("training_file"), "training_file")
        validation = body.get("validation_file")
        if validation is not None:
            self._fine_tune_file(validation, "validation_file")
        suffix = body.get("suffix")
        if suffix is not None and (not isinstance(suffix, str) or len(suffix) > 64):
            raise _Refusal(
                400, "suffix must be a string of at most 64 characters.", code=None, param="suffix"
            )
        hyper = hyperparameters(body)
        steps = math.ceil(training.examples / hyper["batch_size"]) * hyper["n_epochs"]
        job = FakeJob(
            id=self._new_id("ftjob"),
            model=model,
            training_file=training.id,
            validation_file=validation,
            suffix=suffix,
            seed=int(body["seed"]) if body.get("seed") is not None else 42,
            hyperparameters=hyper,
            created_at=self._now(),
            total_steps=max(1, steps),
            trained_tokens=words(training.content) * hyper["n_epochs"],
            failure=self._next_failure,
            metadata=body.get("metadata"),
        )
        self._next_failure = None
        self.jobs[job.id] = job
        self._event(job, f"Created fine-tuning job: {job.id}")
        self._event(job, f"Validating training file: {training.id}")
        if validation is not None:
            self._event(job, f"Validating validation file: {validation}")
        return job

    def _fine_tune_file(self, file_id: Any, param: str) -> FakeFile:
        found = self.files.get(file_id) if isinstance(file_id, str) else None
        if found is None or found.purpose != "fine-tune":
            raise _Refusal(
                400,
                f"invalid {param} {file_id!r}: upload it with purpose 'fine-tune' first",
                code=f"invalid_{param}",
                param=param,
            )
        return found

    def _known_job(self, job_id: str) -> FakeJob:
        found = self.jobs.get(job_id)
        if found is None:
            raise _Refusal(
                404, f"No fine-tuning job found with id {job_id}", code=None, param="fine_tune_id"
            )
        return found

    async def _list_jobs(self, after: str | None = None, limit: int = 20) -> Response:
        def build() -> dict[str, Any]:
            newest = list(reversed(self.jobs.values()))
            data, more = page(newest, after, limit)
            return {
                "object": "list",
                "data": [j.to_json(self.organization) for j in data],
                "has_more": more,
            }

        return self._answer(build)

    async def _retrieve(self, job_id: str) -> Response:
        def build() -> dict[str, Any]:
            job = self._known_job(job_id)
            self._advance(job)
            return job.to_json(self.organization)

        return self._answer(build)

    async def _events(self, job_id: str, after: str | None = None, limit: int = 20) -> Response:
        def build() -> dict[str, Any]:
            newest = list(reversed(self._known_job(job_id).events))
            data, more = page(newest, after, limit)
            return {"object": "list", "data": data, "has_more": more}

        return self._answer(build)

    async def _cancel(self, job_id: str) -> Response:
        def build() -> dict[str, Any]:
            job = self._known_job(job_id)
            if job.status in TERMINAL:
                raise _Refusal(
                    400,
                    f"Job {job_id} has ended ({job.status}): it cannot be cancelled.",
                    code=None,
                )
            job.status, job.finished_at = "cancelled", self._now()
            self._event(job, "Fine-tuning job cancelled")
            return job.to_json(self.organization)

        return self._answer(build)

    # ------------------------------------------------------------ the scripted progress

    def _advance(self, job: FakeJob) -> None:
        """One stage per retrieval, or all of them (see the module docstring)."""
        self._stage(job)
        while self.steps_per_poll is None and job.status not in TERMINAL:
            self._stage(job)

    def _stage(self, job: FakeJob) -> None:
        if job.status == "validating_files":
            training = self.files[job.training_file]
            if training.examples < self.min_examples:
                self._fail(
                    job,
                    f"Training file has {training.examples} example(s), but must have at least "
                    f"{self.min_examples} examples",
                    "invalid_training_file",
                )
            elif job.failure is not None and job.failure.at_step <= 0:
                self._fail(job, job.failure.message, job.failure.code)
            else:
                job.status = "queued"
                self._event(job, "Files validated, moving job to queued state")
        elif job.status == "queued":
            job.status = "running"
            self._event(job, "Fine-tuning job started")
        elif job.status == "running":
            for _ in range(self.steps_per_poll or job.total_steps):
                if job.failure is not None and job.step + 1 == job.failure.at_step:
                    self._fail(job, job.failure.message, job.failure.code)
                    return
                job.step += 1
                self._metrics(job)
                if job.step >= job.total_steps:
                    self._succeed(job)
                    return

    def _metrics(self, job: FakeJob) -> None:
        step = job.step
        train_loss = round(2.5 * 0.85**step + 0.1, 4)
        data: dict[str, Any] = {
            "step": step,
            "train_loss": train_loss,
            "total_steps": job.total_steps,
            "train_mean_token_accuracy": round(1.0 - train_loss / 3.0, 4),
        }
        message = f"Step {step}/{job.total_steps}: training loss={train_loss}"
        if job.validation_file is not None:
            valid_loss = round(train_loss + 0.05, 4)
            data["valid_loss"] = valid_loss
            data["valid_mean_token_accuracy"] = round(1.0 - valid_loss / 3.0, 4)
            message += f", validation loss={valid_loss}"
        self._event(job, message, data=data, kind="metrics")

    def _succeed(self, job: FakeJob) -> None:
        short = job.id.removeprefix("ftjob-")
        job.fine_tuned_model = f"ft:{job.model}:{self.organization}:{job.suffix or ''}:{short}"
        results = "step,train_loss\n" + "".join(
            f"{e['data']['step']},{e['data']['train_loss']}\n"
            for e in job.events
            if e["type"] == "metrics"
        )
        result = FakeFile(
            self._new_id("file"), "step_metrics.csv", "fine-tune-results", results.encode(), 0
        )
        self.files[result.id] = result
        job.result_files = [result.id]
        job.status, job.finished_at = "succeeded", self._now()
        self._event(job, f"New fine-tuned model created: {job.fine_tuned_model}")
        self._event(job, "The job has successfully completed")

    def _fail(self, job: FakeJob, message: str, code: str) -> None:
        param = "training_file" if code == "invalid_training_file" else None
        job.status, job.finished_at = "failed", self._now()
        job.error = {"code": code, "message": message, "param": param}
        self._event(job, message, level="error")

    def _event(
        self,
        job: FakeJob,
        message: str,
        *,
        data: dict[str, Any] | None = None,
        kind: str = "message",
        level: str = "info",
    ) -> None:
        job.events.append(
            {
                "object": "fine_tuning.job.event",
                "id": self._new_id("ftevent"),
                "created_at": self._now(),
                "level": level,
                "message": message,
                "data": data or {},
                "type": kind,
            }
        )
