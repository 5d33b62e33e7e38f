"""What a deployment serves and how traffic reaches it: the spec stored with each revision.

A deployment names one or more *targets* (an OpenAI-compatible upstream such as ``genai
serve`` or vLLM, or an in-process backend), a *policy* that picks one per request
(weighted canary, sticky A/B, or a Thompson-sampling bandit), optional *fallbacks* tried in
order when the chosen target fails, and an optional *shadow* target that receives a copy of
each request in the background. Changing any of it is a new deployment revision.

Example (YAML or JSON)::

    targets:
      - {name: stable, url: http://127.0.0.1:8001/v1, model: tiny, adapter: support, weight: 90}
      - {name: canary, url: http://127.0.0.1:8001/v1, model: tiny, adapter: support-2, weight: 10}
    policy: weighted
    fallbacks:
      - {name: vendor, url: https://api.example.com/v1, model: gpt-x, api_key_secret: vendor-key}
    shadow: {target: {name: next, url: http://127.0.0.1:8002/v1, model: next}, sample: 0.2}

A target's upstream key is a secret of the deployment's own project, by name
(``api_key_secret``; set with ``genai secret set vendor-key --project P``). ``api_key_env``
names a variable of the gateway's environment and works only for the variables the operator
allows (``GENAI_SECRET_ENV_ALLOWLIST``, empty by default): see ``_credentials.py``.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from genai.errors import ValidationError as GenAIValidationError
from genai.validation import first_problem

__all__ = [
    "BanditConfig",
    "CircuitConfig",
    "DeploymentSpec",
    "Price",
    "ShadowConfig",
    "TargetSpec",
    "parse_spec",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_SECRET = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9])?$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Price(_Strict):
    """USD per million tokens (what this target costs the company)."""

    input_per_1m: float = Field(default=0.0, ge=0)
    output_per_1m: float = Field(default=0.0, ge=0)

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input_per_1m + completion_tokens * self.output_per_1m) / 1e6


class TargetSpec(_Strict):
    """One place requests can go: an OpenAI-compatible ``url``, or an in-process ``backend``."""

    name: str
    url: str | None = None
    backend: str | None = None  # an in-process backend by name (e.g. "extractive")
    model: str | None = None  # the upstream's model name (default: the upstream's base)
    adapter: str | None = None  # a LoRA adapter the upstream serves (sent as the model)
    api_key_secret: str | None = Field(
        default=None,
        description="The upstream key: a secret of the deployment's own project, by name "
        "(`genai secret set NAME --project P`).",
    )
    api_key_env: str | None = Field(
        default=None,
        description="The upstream key from this variable of the gateway's environment: only "
        "for variables the operator allows (GENAI_SECRET_ENV_ALLOWLIST); prefer api_key_secret.",
    )
    weight: float = Field(default=1.0, ge=0)
    timeout_s: float = Field(default=60.0, gt=0)
    price: Price = Field(default_factory=Price)
    gpus: float = Field(default=0.0, ge=0, description="GPUs behind a self-hosted target.")
    options: dict[str, Any] = Field(default_factory=dict)  # the backend's keyword options
    responses_api: bool = Field(
        default=False,
        description="The upstream speaks OpenAI's Responses API (POST /v1/responses), as "
        "OpenAI does: chat and Responses requests reach it there (see _responses_wire.py).",
    )

    @model_validator(mode="after")
    def _check(self) -> TargetSpec:
        if not _NAME.match(self.name):
            raise ValueError(f"target name {self.name!r}: use letters, digits, '.', '_' or '-'")
        if (self.url is None) == (self.backend is None):
            raise ValueError(f"target {self.name!r} needs exactly one of url and backend")
        if self.url is not None and not re.match(r"^https?://[^\s/]+", self.url):
            raise ValueError(f"target {self.name!r}: url {self.url!r} is not an http(s) URL")
        if self.responses_api and self.url is None:
            raise ValueError(f"target {self.name!r}: responses_api is for url targets")
        if self.url is not None and not (self.model or self.adapter):
            raise ValueError(f"target {self.name!r} needs the upstream's model name (model)")
        if self.api_key_secret is not None and self.api_key_env is not None:
            raise ValueError(
                f"target {self.name!r}: give api_key_secret (a project secret) or api_key_env "
                "(a variable the operator allows), not both"
            )
        if self.api_key_secret is not None and not _SECRET.match(self.api_key_secret):
            raise ValueError(
                f"target {self.name!r}: api_key_secret {self.api_key_secret!r} is not a secret "
                "name (1-100 letters, digits, '.', '_' or '-')"
            )
        return self

    @property
    def upstream_model(self) -> str | None:
        """The ``model`` sent upstream: the adapter when there is one (vLLM's convention)."""
        return self.adapter or self.model


class ShadowConfig(_Strict):
    target: TargetSpec
    sample: float = Field(default=1.0, gt=0, le=1)


class CircuitConfig(_Strict):
    failures: int = Field(default=5, ge=1, description="Consecutive failures that open it.")
    reset_s: float = Field(default=30.0, gt=0, description="Seconds before a trial request.")


class BanditConfig(_Strict):
    cost_weight: float = Field(default=0.0, ge=0, description="Reward penalty per USD of cost.")
    prior_alpha: float = Field(default=1.0, gt=0)
    prior_beta: float = Field(default=1.0, gt=0)


class DeploymentSpec(_Strict):
    kind: Literal["chat", "embedding"] = "chat"
    targets: list[TargetSpec] = Field(min_length=1)
    policy: Literal["weighted", "ab", "bandit"] = "weighted"
    sticky_header: str = "x-genai-user"
    fallbacks: list[TargetSpec] = Field(default_factory=list)
    shadow: ShadowConfig | None = None
    retries: int = Field(default=2, ge=0, le=10)
    backoff_s: float = Field(default=0.05, ge=0)
    circuit: CircuitConfig = Field(default_factory=CircuitConfig)
    bandit: BanditConfig = Field(default_factory=BanditConfig)
    adapters: list[str] = Field(
        default_factory=list, description="Adapters callers may pick with model=deployment:adapter."
    )

    @model_validator(mode="after")
    def _unique(self) -> DeploymentSpec:
        names = [t.name for t in [*self.targets, *self.fallbacks]]
        if self.shadow is not None:
            names.append(self.shadow.target.name)
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"target names must be unique; repeated: {', '.join(dupes)}")
        if self.policy == "weighted" and not any(t.weight > 0 for t in self.targets):
            raise ValueError("a weighted policy needs a target with weight above 0")
        return self

    def target(self, name: str) -> TargetSpec:
        for target in [*self.targets, *self.fallbacks]:
            if target.name == name:
                return target
        raise KeyError(name)


def parse_spec(data: Any) -> DeploymentSpec:
    """Check a spec (a dict from JSON or YAML), naming the first problem and where it is."""
    try:
        return DeploymentSpec.model_validate(data)
    except ValidationError as error:
        where, message = first_problem(error)
        raise GenAIValidationError(
            f"invalid deployment spec at {where}: {message}", field=where
        ) from None
