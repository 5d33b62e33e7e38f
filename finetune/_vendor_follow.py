"""Following a vendor's fine-tuning job: :class:`_Follower` polls the job, appends each new
event to the run's ``events.jsonl``, logs its metrics as the run's, shows a progress bar
(:class:`_Display`) and ends the run (registering the fine-tuned model when it succeeded).
Also the constants and the cancellation that job creation shares with it."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

from finetune._config import FineTuneConfig
from finetune._run import _sigterm_as_interrupt
from finetune._run import run_dir as _run_dir
from genai.errors import BackendError
from genai.files import atomic_write_text, private_file
from genai.progress import ProgressBar
from genai.registry import ModelVersion

if TYPE_CHECKING:
    from openai import OpenAI
    from openai.types.fine_tuning import FineTuningJob, FineTuningJobEvent

    from genai import Client

#: The licence a vendor's fine-tuned model is registered under: the vendor's own terms.
#: Platforms that allow vendor models add it to ``GENAI_LICENSE_ALLOWLIST``.
LICENSE = "proprietary"
BACKEND = "openai"
TERMINAL = ("succeeded", "failed", "cancelled")

#: Vendor event metrics → the run's metric names (those of local runs).
_METRICS = {
    "train_loss": "loss",
    "valid_loss": "eval_loss",
    "train_mean_token_accuracy": "accuracy",
    "valid_mean_token_accuracy": "eval_accuracy",
    "full_valid_loss": "full_eval_loss",
    "full_valid_mean_token_accuracy": "full_eval_accuracy",
}


class _VendorCalls(Protocol):
    """What following needs of ``finetune._vendor._Calls``: the vendor's endpoint, and its
    errors translated into the platform's."""

    endpoint: str

    def doing(self, what: str) -> AbstractContextManager[None]: ...


def _cancel(vendor: OpenAI, job_id: str) -> bool:
    """Cancel the vendor's job if it can be; whether it was."""
    try:
        vendor.fine_tuning.jobs.cancel(job_id)
    except Exception:
        return False
    return True


class _Follower:
    """Polls the job, records its events and metrics in the run, ends the run."""

    def __init__(
        self,
        client: Client,
        project: str,
        run_id: str,
        vendor: OpenAI,
        calls: _VendorCalls,
        *,
        progress: bool,
    ) -> None:
        self.client, self.project, self.run_id = client, project, run_id
        self.vendor, self.calls = vendor, calls
        self.output = _run_dir(client, project, run_id)
        self.events = self.output / "events.jsonl"
        self.display = _Display(progress)
        self.seen: set[str] = set()

    def run(
        self,
        job: FineTuningJob,
        cfg: FineTuneConfig,
        *,
        poll_s: float,
        sleep: Callable[[float], None],
        clock: Callable[[], float],
    ) -> tuple[FineTuningJob, ModelVersion | None]:
        """The ended job, and the model registered from it (None when not registered)."""
        try:
            private_file(self.events)
            with _sigterm_as_interrupt(), self.display:
                job = self._follow(job.id, poll_s=poll_s, sleep=sleep, clock=clock)
            atomic_write_text(self.output / "job.json", job.model_dump_json(indent=2))
            model = self._end(job, cfg)
        except KeyboardInterrupt:
            if job.status not in TERMINAL:
                _cancel(self.vendor, job.id)
            self._finish("cancelled")
            raise
        except BaseException:
            if job.status not in TERMINAL:
                _cancel(self.vendor, job.id)
            self._finish("failed")
            raise
        return job, model

    def _follow(
        self,
        job_id: str,
        *,
        poll_s: float,
        sleep: Callable[[float], None],
        clock: Callable[[], float],
    ) -> FineTuningJob:
        while True:
            started = clock()
            with self.calls.doing(f"a look at job {job_id}"):
                job = self.vendor.fine_tuning.jobs.retrieve(job_id)
                fresh = self._new_events(job_id)
            for event in fresh:
                self._record(event)
            self.display.status(job.status)
            if job.status in TERMINAL:
                return job
            sleep(max(0.0, poll_s - (clock() - started)))

    def _new_events(self, job_id: str) -> list[FineTuningJobEvent]:
        """The events not seen yet, oldest first (the API lists newest first; the SDK
        pages on with ``after`` until a seen one)."""
        fresh = []
        for event in self.vendor.fine_tuning.jobs.list_events(job_id, limit=100):
            if event.id in self.seen:
                break
            fresh.append(event)
        fresh.reverse()
        self.seen.update(e.id for e in fresh)
        return fresh

    def _record(self, event: FineTuningJobEvent) -> None:
        with open(self.events, "a", encoding="utf-8") as handle:
            handle.write(event.model_dump_json() + "\n")
        data = event.data if isinstance(event.data, dict) else {}
        step = data.get("step")
        if event.type == "metrics" and isinstance(step, int) and not isinstance(step, bool):
            values = {
                name: float(data[key]) for key, name in _METRICS.items() if _number(data.get(key))
            }
            if values:
                self.client.registry.runs.log(
                    self.project, self.run_id, values, step=step, replace=True
                )
            total = data.get("total_steps")
            self.display.step(step, total if isinstance(total, int) else None, values)
        else:
            self.display.note(event.level, event.message)

    def _end(self, job: FineTuningJob, cfg: FineTuneConfig) -> ModelVersion | None:
        if job.status != "succeeded":
            error = job.error
            why = f"{error.message} ({error.code})" if error else "no reason given"
            ending = "failed" if job.status == "failed" else "cancelled"
            self._finish(ending)
            what = "failed" if ending == "failed" else "was cancelled at the vendor"
            raise BackendError(
                f"the vendor's fine-tuning job {job.id} {what}: {why}; run:{self.run_id} is "
                f"marked {ending}",
                backend=BACKEND,
            )
        if not job.fine_tuned_model:
            raise BackendError(
                f"the vendor's job {job.id} succeeded without naming its model", backend=BACKEND
            )
        model = None
        if cfg.register_adapter:
            model = self.client.registry.models.register(
                self.project,
                cfg.adapter,
                source=f"openai:{job.fine_tuned_model}",
                license=LICENSE,
                description=(
                    f"{job.model} fine-tuned by the vendor at {self.calls.endpoint} in "
                    f"run:{self.run_id}"
                ),
                metadata={
                    "vendor": {"endpoint": self.calls.endpoint, "job": job.id},
                    "base": job.model,
                    "hyperparameters": job.hyperparameters.model_dump(mode="json"),
                    "trained_tokens": job.trained_tokens,
                },
                run=self.run_id,
            )
        self._finish("finished")
        return model

    def _finish(self, status: str) -> None:
        runs = self.client.registry.runs
        if runs.get(self.project, self.run_id).status == "running":
            runs.finish(self.project, self.run_id, status=status)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class _Display(ProgressBar):
    """A progress bar of the vendor's steps (rich, on stderr), and its messages."""

    def __init__(self, enabled: bool) -> None:
        super().__init__(
            enabled=enabled,
            title="validating_files",
            total=None,
            fields={"metrics": ""},
            template="{task.fields[metrics]}",
            stderr=True,
        )

    def status(self, status: str) -> None:
        self.update(description=status)

    def step(self, step: int, total: int | None, values: Mapping[str, float]) -> None:
        shown = " ".join(f"{k}={v:.4g}" for k, v in values.items())
        self.update(completed=step, total=total, metrics=shown)

    def note(self, level: str, message: str) -> None:
        from rich.text import Text

        style = {"warn": "yellow", "error": "red"}.get(level, "dim")
        self.print(Text(message, style=style))
