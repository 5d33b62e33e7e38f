"""Vendor fine-tuning (``backend: openai``): the same governed run, trained by a vendor
behind an OpenAI-compatible fine-tuning API.

:func:`train_vendor` reads the API key from a project secret (``vendor_secret``), applies
the project's DLP policy to the dataset as a local run does (the treated rows are
registered as a derived dataset), validates every row and converts it to OpenAI's chat
fine-tuning JSONL, uploads the training (and evaluation) split, creates the job, and opens
a registry run (lineage: the treated dataset → the run) whose params hold the vendor's ids.
It then follows the job: each new event goes to ``events.jsonl`` in the run's folder, and
each ``metrics`` event becomes the step's ``loss``, ``eval_loss``, ``accuracy`` and
``eval_accuracy``. A succeeded job's model is registered in the project as
``openai:<fine-tuned model id>`` (lineage: the run → the model); a failed or cancelled job
fails (or cancels) the run and raises a :class:`~genai.errors.BackendError` with the
vendor's message; Ctrl-C (or SIGTERM) cancels the vendor's job and the run.

Hyperparameters: ``epochs`` → ``n_epochs`` (whole epochs) and ``batch_size`` →
``batch_size`` when the config sets them, else ``auto`` (the vendor chooses; the run's
``events.jsonl`` and ``job.json`` keep what it chose); ``seed`` → ``seed``; the adapter's
name → ``suffix``. A learning rate has no vendor equivalent (the vendor scales its own by
``learning_rate_multiplier``), so setting ``learning_rate``, like any setting that only
local training reads (rank, packing…), is refused rather than ignored.

The rows' conversion lives in :mod:`finetune._vendor_rows`, the following of the job in
:mod:`finetune._vendor_follow`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from finetune._config import FineTuneConfig
from finetune._launch import Launch
from finetune._run import RUN_KIND, FineTuneJob, _split_rows, _treated
from finetune._vendor_follow import BACKEND, LICENSE, _cancel, _Follower
from finetune._vendor_rows import _jsonl, openai_rows
from genai.errors import (
    BackendError,
    LicenseNotAllowed,
    MissingDependencyError,
    NotFoundError,
    ValidationError,
)
from genai.registry import ModelVersion

if TYPE_CHECKING:
    from openai import OpenAI
    from openai.types.fine_tuning import FineTuningJob, SupervisedHyperparametersParam

    from genai import Client

__all__ = ["LICENSE", "POLL_S", "VendorFineTuneJob", "openai_rows", "train_vendor"]

#: Seconds between two looks at the vendor's job.
POLL_S = 5.0
#: Settings only local training reads: refused (when set to something else than the
#: default) rather than silently ignored.
# fmt: off
_LOCAL_ONLY = (
    "method", "rank", "alpha", "dropout", "target_modules", "optimizer", "learning_rate",
    "lr_scheduler", "warmup_steps", "weight_decay", "max_grad_norm", "max_steps",
    "gradient_accumulation", "max_length", "packing", "eval_every", "early_stopping_patience",
    "checkpoint_every", "keep_checkpoints", "merge",
)
# fmt: on


@dataclass
class VendorFineTuneJob(FineTuneJob):
    """A vendor run: no adapter; ``model`` is the registered fine-tuned model."""

    model: ModelVersion | None = None
    vendor_job: str = ""


def train_vendor(
    client: Client,
    project: str,
    cfg: FineTuneConfig,
    *,
    progress: bool = True,
    poll_s: float = POLL_S,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> VendorFineTuneJob:
    """Fine-tune ``cfg.vendor_model`` at ``cfg.vendor_endpoint`` on ``cfg.dataset`` of
    ``project`` (see the module docstring); ``sleep`` and ``clock`` pace the polling."""
    endpoint, secret, hyper = _check_config(cfg)
    api_key = project_secret(client, project, secret)
    base = _base_model(client, project, cfg.base_model)
    if cfg.register_adapter:
        _check_license(client)
    source = _treated(client, project, client.registry.datasets.get(project, cfg.dataset))
    train_rows = _split_rows(client, project, source, cfg.train_split, required=True)
    eval_rows = _split_rows(client, project, source, cfg.eval_split, required=False)
    train, report = openai_rows(train_rows, cfg.format, what=f"the training split of {source.ref}")
    held_out: list[dict[str, Any]] = []
    if eval_rows:
        held_out, _ = openai_rows(
            eval_rows, report.format, what=f"the evaluation split of {source.ref}"
        )
    calls = _Calls(endpoint, secret, project, api_key)
    with calls.client() as vendor:
        job = _create_job(vendor, calls, cfg, hyper, train, held_out)
        try:
            active = client.registry.runs.start(
                project,
                cfg.name,
                params={"config": cfg.to_dict(), "vendor": _ids(endpoint, secret, hyper, job)},
                datasets=[source.ref],
                base_model=base,
                kind=RUN_KIND,
            )
        except BaseException:
            _cancel(vendor, job.id)
            raise
        follower = _Follower(client, project, active.id, vendor, calls, progress=progress)
        job, model = follower.run(job, cfg, poll_s=poll_s, sleep=sleep, clock=clock)
        info = client.registry.runs.get(project, active.id)
        return VendorFineTuneJob(
            client, project, info, None, follower.output, report, model, job.id
        )


# ------------------------------------------------------------------ before anything is sent


def _check_config(cfg: FineTuneConfig) -> tuple[str, str, SupervisedHyperparametersParam]:
    if not cfg.vendor_endpoint:
        raise ValidationError(
            "backend: openai needs vendor_endpoint, the base URL of the vendor's "
            "OpenAI-compatible API (e.g. https://api.openai.com/v1)",
            field="vendor_endpoint",
        )
    if not cfg.vendor_secret:
        raise ValidationError(
            "backend: openai needs vendor_secret, the name of the project secret holding the "
            "vendor's API key (`genai secret set NAME -p PROJECT`)",
            field="vendor_secret",
        )
    fields = FineTuneConfig.model_fields
    ignored = [
        f"{name}={getattr(cfg, name)!r}"
        for name in _LOCAL_ONLY
        if name in cfg.model_fields_set and getattr(cfg, name) != fields[name].default
    ]
    if cfg.loss_on == "all":
        ignored.append("loss_on='all'")
    if Launch.current().world > 1:
        raise ValidationError(
            "backend: openai runs in one process (the vendor trains): run it without "
            "torchrun or accelerate launch",
            field="backend",
        )
    if ignored:
        raise ValidationError(
            "backend: openai cannot honour these settings of local training: "
            f"{', '.join(ignored)} (the vendor chooses its method, optimiser and learning "
            "rate, and trains assistant turns only): remove them, or train with backend: local",
            field="config",
        )
    return cfg.vendor_endpoint, cfg.vendor_secret, _hyperparameters(cfg)


def _hyperparameters(cfg: FineTuneConfig) -> SupervisedHyperparametersParam:
    given = cfg.model_fields_set
    epochs: int | Literal["auto"] = "auto"
    if "epochs" in given:
        if not float(cfg.epochs).is_integer():
            raise ValidationError(
                f"backend: openai trains whole epochs, not {cfg.epochs}: set epochs to an "
                "integer, or leave it out to let the vendor choose",
                field="epochs",
            )
        epochs = int(cfg.epochs)
    # a future FineTuneConfig.learning_rate_multiplier, passed through when set
    multiplier = getattr(cfg, "learning_rate_multiplier", None)
    return {
        "n_epochs": epochs,
        "batch_size": cfg.batch_size if "batch_size" in given else "auto",
        "learning_rate_multiplier": "auto" if multiplier is None else float(multiplier),
    }


def project_secret(client: Client, project: str, name: str) -> str:
    """The value of project secret ``name``, for a caller who may write the project's
    registry (training needs that anyway); each use is audited."""
    from genai.tenancy import Action, read_secret, secret_sealer

    ctx = client.context
    with ctx.store.session() as s:
        me = ctx.me(s)
        proj = ctx.project(s, me, project, Action.REGISTRY_WRITE)
        value = read_secret(s, secret_sealer(client.settings), proj.id, name)
        if value is None:
            raise NotFoundError(
                f"project {project!r} has no secret {name!r} (vendor_secret): set the vendor's "
                f"API key with `genai secret set {name} -p {project}`"
            )
        ctx.audit(
            s, me, "secret.use", project=proj, resource=f"secret:{name}", purpose="fine-tuning"
        )
        return value


def _base_model(client: Client, project: str, text: str) -> str | None:
    """The registered model ``base_model`` names (lineage model → run), or None when it
    names none: a vendor's base model is usually not registered here. A ``model:``
    reference must exist."""
    try:
        return client.registry.models.get(project, text).ref
    except (NotFoundError, ValidationError):
        if text.strip().startswith("model:"):
            raise
        return None


def _check_license(client: Client) -> None:
    allowed = client.settings.license_allowlist
    if LICENSE not in allowed:
        raise LicenseNotAllowed(
            f"a vendor's fine-tuned model is registered under the licence {LICENSE!r}, which is "
            f"not on this platform's allowlist ({', '.join(allowed)}): ask a platform admin to "
            "add it to GENAI_LICENSE_ALLOWLIST, or set register_adapter: false"
        )


# ------------------------------------------------------------------ the vendor's API


class _Calls:
    """The vendor's client, and its errors translated into the platform's."""

    def __init__(self, endpoint: str, secret: str, project: str, api_key: str) -> None:
        self.endpoint, self.secret, self.project = endpoint, secret, project
        self._api_key = api_key

    def client(self) -> OpenAI:
        try:
            from openai import OpenAI
        except ImportError as error:
            raise MissingDependencyError(
                "openai", extra="finetune", purpose="Vendor fine-tuning (backend: openai)"
            ) from error
        return OpenAI(base_url=self.endpoint, api_key=self._api_key)

    @contextlib.contextmanager
    def doing(self, what: str) -> Iterator[None]:
        import openai

        try:
            yield
        except openai.APIStatusError as error:
            status = error.status_code
            told = self._scrub(_vendor_message(error))
            if status in (401, 403):
                raise BackendError(
                    f"the vendor at {self.endpoint} refused the API key in project secret "
                    f"{self.secret!r} while {what} ({status}: {told}): set the right key with "
                    f"`genai secret set {self.secret} -p {self.project}`",
                    backend=BACKEND,
                    status=status,
                ) from error
            raise BackendError(
                f"the vendor at {self.endpoint} refused {what} ({status}: {told})",
                backend=BACKEND,
                status=status,
                retryable=status in (408, 409, 429) or status >= 500,
            ) from error
        except openai.APIError as error:  # no answer: connection refused, timed out
            raise BackendError(
                f"cannot reach the vendor at {self.endpoint} while {what} "
                f"({self._scrub(str(error))}): check vendor_endpoint and the network",
                backend=BACKEND,
                retryable=True,
            ) from error

    def _scrub(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text


def _vendor_message(error: Any) -> str:
    body = error.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    return str(error.message)


def _create_job(
    vendor: OpenAI,
    calls: _Calls,
    cfg: FineTuneConfig,
    hyper: SupervisedHyperparametersParam,
    train: list[dict[str, Any]],
    held_out: list[dict[str, Any]],
) -> FineTuningJob:
    """Upload the files and create the job; the files are deleted again when the job
    cannot be created."""
    uploaded: list[str] = []
    try:
        with calls.doing("the training file"):
            training = vendor.files.create(
                file=(f"{cfg.name}-train.jsonl", _jsonl(train), "application/jsonl"),
                purpose="fine-tune",
            )
        uploaded.append(training.id)
        validation = None
        if held_out:
            with calls.doing("the validation file"):
                validation = vendor.files.create(
                    file=(f"{cfg.name}-eval.jsonl", _jsonl(held_out), "application/jsonl"),
                    purpose="fine-tune",
                )
            uploaded.append(validation.id)
        with calls.doing("the fine-tuning job"):
            return vendor.fine_tuning.jobs.create(
                model=str(cfg.vendor_model),
                training_file=training.id,
                validation_file=validation.id if validation else None,
                method={"type": "supervised", "supervised": {"hyperparameters": hyper}},
                seed=cfg.seed,
                suffix=cfg.adapter[:64],
            )
    except BaseException:
        for file_id in uploaded:
            with contextlib.suppress(Exception):
                vendor.files.delete(file_id)
        raise


def _ids(
    endpoint: str, secret: str, hyper: Mapping[str, Any], job: FineTuningJob
) -> dict[str, Any]:
    return {
        "endpoint": endpoint,
        "secret": secret,
        "model": job.model,
        "job": job.id,
        "training_file": job.training_file,
        "validation_file": job.validation_file,
        "hyperparameters": dict(hyper),
    }
