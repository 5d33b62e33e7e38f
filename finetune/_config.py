"""The recipe: one typed, keyword-only configuration of a fine-tuning run (YAML or Python)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from genai.errors import ValidationError as GenAIValidationError

__all__ = ["DataFormat", "FineTuneConfig", "LossOn", "Method", "load_config"]

Method = Literal["lora", "qlora", "dora", "rslora"]
DataFormat = Literal["auto", "chat", "alpaca", "prompt_completion", "text"]
LossOn = Literal["auto", "assistant", "completion", "all"]


class FineTuneConfig(BaseModel):
    """Everything a training run depends on; stored in full with the run.

    ``base_model`` is a registry reference (``model:NAME[@VERSION|:ALIAS]``) of the project;
    ``dataset`` a dataset reference, trained on its ``train_split`` (all rows when the
    dataset has no splits) and evaluated on ``eval_split`` when that split exists.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field("finetune", description="the run's name; the adapter's unless adapter_name")
    base_model: str
    dataset: str
    train_split: str | None = "train"
    eval_split: str | None = "test"
    format: DataFormat = "auto"
    backend: Literal["local", "openai"] = "local"

    # the adapter
    method: Method = "lora"
    rank: int = Field(8, ge=1, le=512)
    alpha: float = Field(16.0, gt=0)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: str | list[str] = "all-linear"

    # optimisation
    optimizer: Literal["adamw_torch", "sgd", "adafactor"] = "adamw_torch"
    learning_rate: float = Field(2e-4, gt=0)
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    warmup_steps: int = Field(0, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, ge=0)
    epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, ge=1, description="overrides epochs when set")
    batch_size: int = Field(4, ge=1)
    gradient_accumulation: int = Field(1, ge=1)
    max_length: int = Field(1024, ge=8)
    packing: bool = False
    loss_on: LossOn = "auto"
    seed: int = 0

    # evaluation, checkpoints, stopping
    eval_every: int | None = Field(None, ge=1, description="optimizer steps between evals")
    early_stopping_patience: int | None = Field(None, ge=1)
    checkpoint_every: int = Field(50, ge=1, description="optimizer steps between checkpoints")
    keep_checkpoints: int = Field(2, ge=1)

    # the output
    adapter_name: str | None = None
    register_adapter: bool = True
    merge: bool = False

    # the vendor backend (backend: openai)
    vendor_model: str | None = None
    vendor_endpoint: str | None = None
    vendor_secret: str | None = Field(None, description="the project secret holding the API key")
    learning_rate_multiplier: float | None = Field(
        None, gt=0, description="vendor only: scales the vendor's own learning rate"
    )

    @model_validator(mode="after")
    def _check(self) -> FineTuneConfig:
        if self.early_stopping_patience is not None and self.eval_every is None:
            raise ValueError("early_stopping_patience needs eval_every (how often to evaluate)")
        if self.backend == "openai" and not self.vendor_model:
            raise ValueError("backend: openai needs vendor_model (the vendor's base model id)")
        return self

    @property
    def adapter(self) -> str:
        return self.adapter_name or self.name

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.gradient_accumulation

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def load_config(source: str | Path | dict[str, Any], **overrides: Any) -> FineTuneConfig:
    """A config from a YAML file, a dict or keyword arguments, with errors that name the
    offending field and its allowed values."""
    data = _read_yaml(Path(source)) if isinstance(source, (str, Path)) else dict(source)
    data.update(overrides)
    try:
        return FineTuneConfig(**data)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            where = ".".join(str(p) for p in item["loc"]) or "config"
            problems.append(f"{where}: {item['msg']}")
        raise GenAIValidationError(
            "the fine-tuning config is invalid: " + "; ".join(problems), field="config"
        ) from None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        import yaml
    except ImportError as error:  # pragma: no cover - pyyaml comes with the serve extra
        from genai.errors import MissingDependencyError

        raise MissingDependencyError("pyyaml", extra="serve", purpose="YAML configs") from error
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as error:
        raise GenAIValidationError(f"cannot read {path}: {error}", field="config") from None
    except yaml.YAMLError as error:
        raise GenAIValidationError(f"{path} is not valid YAML: {error}", field="config") from None
    if not isinstance(data, dict):
        raise GenAIValidationError(f"{path} must hold a mapping of settings", field="config")
    return data
