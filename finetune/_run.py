"""A fine-tuning run as a governed step of the lineage dataset → run → adapter.

:func:`train` resolves the base model and the dataset in the project (as the caller, so
the registry authorizes every read and write), applies the project's DLP policy to the rows
and registers what it trained on as a derived dataset, validates every row, opens a
registry run, trains, and registers the adapter the run produced. :func:`resume` continues
an interrupted run from its newest complete checkpoint.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import signal
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from finetune._config import FineTuneConfig, load_config
from finetune._data import ValidationReport, validate_rows
from finetune._launch import Launch
from finetune._tokens import Encoded, Encoder
from genai.errors import ConflictError, GenAIError, LicenseNotAllowed, ValidationError
from genai.files import private_dir
from genai.registry import AdapterVersion, DatasetVersion, MetricPoint, RunInfo

if TYPE_CHECKING:
    from genai import Client

__all__ = ["FineTuneJob", "Prepared", "prepare", "resume", "run_dir", "train"]

RUN_KIND = "fine-tuning"


@dataclass
class FineTuneJob:
    """What a training returns: the registry run and the adapter it registered."""

    client: Client = field(repr=False)
    project: str
    run: RunInfo
    adapter: AdapterVersion | None
    output_dir: Path
    report: ValidationReport | None = None

    def metrics(self, key: str | None = None) -> list[MetricPoint]:
        return self.client.registry.runs.metrics(self.project, self.run.id, key=key)

    def plot(self, keys: Sequence[str] = ("loss", "eval_loss")) -> Any:
        """The loss curves (a matplotlib figure; a notebook shows it)."""
        from finetune._plot import plot_metrics

        return plot_metrics(self.metrics(), keys=keys, title=f"run:{self.run.id}")


@dataclass(frozen=True)
class Prepared:
    """The validated, tokenized data of a run and where it came from."""

    config: FineTuneConfig
    model_dir: Path
    tokenizer: Any
    datasets: list[str]  # what the run trains on (the DLP-treated version when treated)
    train: list[Encoded]
    eval: list[Encoded]
    report: ValidationReport
    base_model: str
    base_license: str


def run_dir(client: Client, project: str, run_id: str) -> Path:
    return private_dir(Path(client.settings.home) / "finetune" / project / run_id)


def train(
    client: Client,
    project: str,
    config: FineTuneConfig | Mapping[str, Any] | str | Path,
    *,
    progress: bool = True,
    callbacks: Sequence[Any] = (),
) -> FineTuneJob:
    """Fine-tune ``config.base_model`` on ``config.dataset`` in ``project``; the run, the
    treated dataset and the adapter are registered there."""
    cfg = config if isinstance(config, FineTuneConfig) else load_config(_source(config))
    if cfg.backend == "openai":
        from finetune._vendor import train_vendor

        return train_vendor(client, project, cfg, progress=progress)
    launch = Launch.current()
    runs = client.registry.runs
    if launch.main:
        try:
            prepared = prepare(client, project, cfg)
            rows = {"train": len(prepared.train), "eval": len(prepared.eval)}
            params = {
                "config": cfg.to_dict(),
                "rows": rows,
                "packages": environment_versions(),
                "processes": launch.world,
            }
            active = runs.start(
                project,
                cfg.name,
                params=params,
                datasets=prepared.datasets,
                base_model=prepared.base_model,
                kind=RUN_KIND,
            )
        except GenAIError as error:
            launch.share(error=error)
            raise
        launch.share((active.id, prepared.datasets))
        run_id = active.id
    else:
        run_id, datasets = launch.share()
        prepared = prepare(client, project, cfg, datasets=datasets)
    return _execute(
        client, project, run_id, prepared, resume=False, callbacks=callbacks, progress=progress
    )


def _source(config: Mapping[str, Any] | str | Path) -> dict[str, Any] | str | Path:
    return config if isinstance(config, (str, Path)) else dict(config)


def resume(
    client: Client,
    project: str,
    run_id: str,
    *,
    progress: bool = True,
    callbacks: Sequence[Any] = (),
) -> FineTuneJob:
    """Continue an interrupted (or failed, or killed) run from its newest complete
    checkpoint: the same data, in the same order, with the same random states."""
    launch = Launch.current()
    if not launch.main:
        config, datasets = launch.share()
        prepared = prepare(client, project, load_config(config), datasets=datasets)
        return _execute(
            client, project, run_id, prepared, resume=True, callbacks=callbacks, progress=progress
        )
    try:
        info, prepared = _reopen(client, project, run_id)
    except GenAIError as error:
        launch.share(error=error)
        raise
    launch.share((info.params["config"], prepared.datasets))
    return _execute(
        client, project, info.id, prepared, resume=True, callbacks=callbacks, progress=progress
    )


def _reopen(client: Client, project: str, run_id: str) -> tuple[RunInfo, Prepared]:
    runs = client.registry.runs
    info = runs.get(project, run_id)
    if info.kind != RUN_KIND:
        raise ValidationError(f"run:{run_id} is a {info.kind} run, not a fine-tuning run")
    output = run_dir(client, project, info.id)
    if info.status == "finished":
        raise ConflictError(f"run:{run_id} has finished: there is nothing to resume")
    if info.status == "running":
        with _lock(output, wait=False) as held:
            if not held:
                raise ConflictError(
                    f"run:{run_id} is still training in another process: wait for it, or stop "
                    "it (Ctrl-C or SIGTERM) and resume"
                )
        runs.finish(project, info.id, status="interrupted")  # its process was killed
    cfg = load_config(info.params["config"])
    if cfg.backend != "local":
        raise ValidationError(
            f"run:{run_id} was trained by a vendor ({cfg.backend}): a vendor's job cannot be "
            "resumed from here; start a new run"
        )
    prepared = prepare(client, project, cfg, datasets=_trained_on(info))
    return runs.reopen(project, info.id), prepared


def _trained_on(info: RunInfo) -> list[str]:
    return [ref for ref in info.inputs if ref.startswith("dataset:")]


def prepare(
    client: Client,
    project: str,
    cfg: FineTuneConfig,
    *,
    datasets: Sequence[str] | None = None,
) -> Prepared:
    """Resolve, treat, validate and tokenize; nothing is trained or registered except the
    DLP-treated dataset version (the same version again when the rows are the same)."""
    from transformers import AutoTokenizer

    from finetune._trainer import check_hardware

    check_hardware(cfg)
    registry = client.registry
    base = registry.models.get(project, cfg.base_model)
    allowed = client.settings.license_allowlist
    if base.license not in allowed:  # the allowlist may have changed since registration
        raise LicenseNotAllowed(
            f"{base.ref} has licence {base.license!r}, which is no longer on this platform's "
            f"allowlist ({', '.join(allowed)}): ask a platform admin, or choose another model"
        )
    model_dir = registry.models.local_path(project, base.ref)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    if datasets:  # a resumed run trains on exactly what it trained on
        source = registry.datasets.get(project, datasets[0])
    else:
        source = _treated(client, project, registry.datasets.get(project, cfg.dataset))
    train_rows = _split_rows(client, project, source, cfg.train_split, required=True)
    eval_rows = _split_rows(client, project, source, cfg.eval_split, required=False)
    encoder = Encoder(tokenizer, loss_on=cfg.loss_on)
    report, examples = validate_rows(
        train_rows, fmt=cfg.format, encoder=encoder, max_length=cfg.max_length
    )
    report.raise_for_errors(f"the training split of {source.ref}")
    held_out: list[Encoded] = []
    if eval_rows:
        eval_report, eval_examples = validate_rows(
            eval_rows, fmt=report.format, encoder=encoder, max_length=cfg.max_length
        )
        eval_report.raise_for_errors(f"the evaluation split of {source.ref}")
        held_out = [encoder.encode(e) for e in eval_examples]
    return Prepared(
        config=cfg,
        model_dir=model_dir,
        tokenizer=tokenizer,
        datasets=[source.ref],
        train=[encoder.encode(e) for e in examples],
        eval=held_out,
        report=report,
        base_model=base.ref,
        base_license=base.license,
    )


def _split_rows(
    client: Client, project: str, info: DatasetVersion, split: str | None, *, required: bool
) -> list[dict[str, Any]]:
    splits = info.splits or {}
    if split is None or split not in splits.get("rows", {}):
        if splits and split is not None and required:
            raise ValidationError(
                f"{info.ref} has no split {split!r} (it has {', '.join(splits['rows'])}): set "
                "train_split to one of them, or to null to train on every row",
                field="train_split",
            )
        if not required:
            return []
        rows = client.registry.datasets.rows(project, info.ref)
    else:
        rows = client.registry.datasets.rows(project, info.ref, split=split)
    column = splits.get("column") if splits.get("method") == "column" else None
    if column:  # the split column is bookkeeping, not a field of the format
        rows = [{k: v for k, v in row.items() if k != column} for row in rows]
    return rows


_STRUCTURAL = {"role", "type", "id", "tool_call_id", "name", "split"}


def _treated(client: Client, project: str, info: DatasetVersion) -> DatasetVersion:
    """The rows under the project's DLP policy, registered as a derived dataset version
    (lineage: the original → the treated); the original when the project sets no policy."""
    from genai.dlp import effective_policy

    policy = effective_policy(client, project)
    if policy is None:
        return info
    from genai.dlp import Dlp, ProjectPolicies

    dlp = Dlp.from_settings(client.settings, client.store)
    project_id = ProjectPolicies(client).project_id(project)
    rows = client.registry.datasets.rows(project, info.ref)
    splits = info.splits or {}
    if splits and splits.get("method") == "hash":
        tagged = []
        for split in splits["rows"]:
            for row in client.registry.datasets.rows(project, info.ref, split=split):
                tagged.append({**row, "split": split})
        rows = tagged
    texts: list[str] = []
    _walk(rows, texts.append)
    redacted = iter(dlp.redact_texts(texts, policy, project_id=project_id))
    treated = _walk(rows, lambda _text: next(redacted))
    column = "split" if splits.get("method") == "hash" else splits.get("column")
    return client.registry.datasets.register(
        project,
        f"{info.name}-dlp",
        treated,
        split_column=column,
        derived_from=info.ref,
        description=f"{info.ref} under the project's DLP policy",
    )


def _walk(value: Any, visit: Any, key: str = "") -> Any:
    """``value`` with every free-text string replaced by ``visit(text)``."""
    if isinstance(value, str):
        if key in _STRUCTURAL:
            return value
        out = visit(value)
        return value if out is None else out
    if isinstance(value, list):
        return [_walk(v, visit, key) for v in value]
    if isinstance(value, dict):
        return {k: _walk(v, visit, k) for k, v in value.items()}
    return value


@contextlib.contextmanager
def _lock(output: Path, *, wait: bool) -> Iterator[bool]:
    """An exclusive lock on the run's folder, held while a process trains it: a run whose
    status is running but whose lock is free was killed."""
    with open(output / ".lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a scheduler stopping the job) ends training as Ctrl-C does."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _execute(
    client: Client,
    project: str,
    run_id: str,
    prepared: Prepared,
    *,
    resume: bool,
    callbacks: Sequence[Any],
    progress: bool,
) -> FineTuneJob:
    from finetune._trainer import train_local

    runs = client.registry.runs
    cfg = prepared.config
    output = run_dir(client, project, run_id)
    launch = Launch.current()

    def sink(metrics: dict[str, float], step: int) -> None:
        runs.log(project, run_id, metrics, step=step, replace=True)

    def end(status: str) -> None:
        if launch.main:
            runs.finish(project, run_id, status=status)

    owner = _lock(output, wait=False) if launch.main else contextlib.nullcontext(True)
    with owner as held:
        if not held:
            raise ConflictError(f"run:{run_id} is being trained by another process")
        try:
            with _sigterm_as_interrupt():
                result = train_local(
                    cfg,
                    model_dir=prepared.model_dir,
                    tokenizer=prepared.tokenizer,
                    train=prepared.train,
                    eval=prepared.eval,
                    output_dir=output,
                    resume=resume,
                    on_metrics=sink,
                    callbacks=callbacks,
                    progress=progress,
                )
        except KeyboardInterrupt:
            end("interrupted")
            raise
        except OSError as error:
            if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                end("interrupted")
                raise ValidationError(
                    f"the disk is full under {output} ({error.strerror}): free space, then "
                    f"`genai finetune resume {run_id} -p {project}` continues from the last "
                    "complete checkpoint"
                ) from error
            end("failed")
            raise
        except BaseException:
            end("failed")
            raise
    if not launch.main:  # the main process registers what the run made
        return FineTuneJob(client, project, runs.get(project, run_id), None, output)
    adapter = None
    if cfg.register_adapter:
        adapter = _register(client, project, run_id, prepared, result.adapter_dir)
    info = runs.finish(project, run_id, status="finished")
    return FineTuneJob(client, project, info, adapter, output, prepared.report)


def _register(
    client: Client, project: str, run_id: str, prepared: Prepared, adapter_dir: Path
) -> AdapterVersion:
    cfg = prepared.config
    adapters = client.registry.adapters
    adapter = adapters.register(
        project,
        cfg.adapter,
        base_model=prepared.base_model,
        path=adapter_dir,
        method=cfg.method,
        run=run_id,
        description=f"trained by run:{run_id} on {', '.join(prepared.datasets)}",
        metadata={
            "datasets": prepared.datasets,
            "loss_on": cfg.loss_on,
            "max_length": cfg.max_length,
            "packing": cfg.packing,
        },
    )
    if cfg.merge:
        _merge(client, project, run_id, prepared, adapter_dir)
    return adapter


def _merge(
    client: Client, project: str, run_id: str, prepared: Prepared, adapter_dir: Path
) -> None:
    """The adapter merged into the base, registered as a model of the project."""
    from peft import AutoPeftModelForCausalLM

    merged_dir = run_dir(client, project, run_id) / "merged"
    model = AutoPeftModelForCausalLM.from_pretrained(str(adapter_dir)).merge_and_unload()
    model.save_pretrained(str(merged_dir))
    prepared.tokenizer.save_pretrained(str(merged_dir))
    client.registry.models.register(
        project,
        f"{prepared.config.adapter}-merged",
        source=str(merged_dir),
        license=prepared.base_license,
        description=f"{prepared.base_model} with the adapter of run:{run_id} merged in",
        metadata={"run": run_id, "base_model": prepared.base_model},
        run=run_id,
    )


def environment_versions() -> dict[str, str]:
    """Versions of the packages a training result depends on."""
    import importlib.metadata

    out = {}
    for name in ("torch", "transformers", "peft", "accelerate", "genai-platform"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out[name] = importlib.metadata.version(name)
    out["python"] = ".".join(str(v) for v in sys.version_info[:3])
    return out
