"""Deployment changes shared by the admin API and ``genai deploy``.

Both make a new deployment revision through the registry (so roles, the audit log and
lineage apply): :func:`apply_spec` from a whole spec, :func:`change_traffic` from the newest
revision with new weights, policy, sticky header or shadow.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from genai import Client
from genai.errors import ValidationError
from genai.gateway import (
    DeploymentSpec,
    env_not_allowed,
    inprocess_policy,
    parse_spec,
    secret_not_set,
    suggested_secret_name,
)
from genai.registry import DeploymentRevision
from genai.settings import Settings

__all__ = [
    "TrafficChange",
    "apply_spec",
    "change_traffic",
    "check_credentials",
    "check_inprocess",
    "newest_revisions",
    "retarget",
]


class TrafficChange(BaseModel):
    """What to change in the newest revision; what is left out stays as it is."""

    model_config = ConfigDict(extra="forbid")

    weights: dict[str, Annotated[float, Field(ge=0)]] | None = Field(
        default=None,
        description="Target name → weight. Targets not named keep theirs; naming the shadow "
        "target moves it into the live targets.",
        examples=[{"stable": 90, "canary": 10}],
    )
    policy: Literal["weighted", "ab", "bandit"] | None = None
    sticky_header: str | None = Field(
        default=None, min_length=1, description="The header that keeps an A/B user on one arm."
    )
    shadow: str | None = Field(
        default=None,
        description="A live target (or fallback) to turn into the shadow, or 'none' (or null) "
        "to drop the shadow and its target.",
    )
    shadow_sample: float | None = Field(
        default=None, gt=0, le=1, description="The share of requests the shadow receives."
    )

    def summary(self) -> str:
        """How the new revision's description names the change."""
        parts = []
        if self.weights:
            parts.append("weights " + ", ".join(f"{k}={v:g}" for k, v in self.weights.items()))
        if self.policy:
            parts.append(f"policy {self.policy}")
        if self.sticky_header:
            parts.append(f"sticky header {self.sticky_header}")
        if "shadow" in self.model_fields_set:
            parts.append(f"shadow {self.shadow or 'none'}")
        if self.shadow_sample is not None:
            parts.append(f"shadow sample {self.shadow_sample:g}")
        return "traffic: " + "; ".join(parts)


def apply_spec(
    client: Client,
    project: str,
    name: str,
    spec: dict[str, Any],
    *,
    description: str = "",
    model: str | None = None,
    adapter: str | None = None,
) -> DeploymentRevision:
    """A new revision of deployment ``name`` serving ``spec`` (checked with ``parse_spec``,
    and its upstream keys with :func:`check_credentials`)."""
    from apps._knowledge import check_bot_targets

    parsed = parse_spec(spec)
    check_bot_targets(parsed)
    check_inprocess(client.settings, parsed)
    check_credentials(client, project, parsed)
    return client.registry.deployments.create(
        project,
        name,
        spec=parsed.model_dump(mode="json", exclude_unset=True),
        description=description,
        model=model,
        adapter=adapter,
    )


def check_inprocess(settings: Settings, spec: DeploymentSpec) -> None:
    """Refuse a spec whose targets (or a knowledge bot's LLM) run a backend in the gateway
    process that the operator does not allow, or load files from outside its model roots
    (:class:`genai.gateway.InProcessPolicy`). The gateway checks again before it builds
    one: this is the early half, under the settings this client runs with."""
    from apps._knowledge import BOT_BACKEND, bot_options

    policy = inprocess_policy(settings)
    shadow = [spec.shadow.target] if spec.shadow else []
    for target in (*spec.targets, *spec.fallbacks, *shadow):
        if target.backend == BOT_BACKEND:
            llm = bot_options(target).llm
            if llm.url is None:
                where = f"target {target.name!r} (its LLM)"
                policy.check(llm.backend or "extractive", llm.options, where=where)
        elif target.backend is not None:
            policy.check(target.backend, target.options, where=f"target {target.name!r}")


def check_credentials(client: Client, project: str, spec: DeploymentSpec) -> None:
    """Refuse a spec whose targets (live, fallback, shadow, a knowledge bot's LLM) read a
    key from a variable the operator did not allow, or name a secret ``project`` lacks.

    The refusal of a variable has the same words whether or not it exists, and names the
    migration (a project secret). The gateway checks again per request: this is the early,
    friendly half, under the allowlist of the settings this client runs with."""
    from apps._knowledge import BOT_BACKEND, bot_options

    allowed = set(client.settings.secret_env_allowlist)
    secrets: set[str] | None = None
    shadow = [spec.shadow.target] if spec.shadow else []
    for target in (*spec.targets, *spec.fallbacks, *shadow):
        keys = [(f"target {target.name!r}", target.api_key_secret, target.api_key_env)]
        if target.backend == BOT_BACKEND:
            llm = bot_options(target).llm
            keys.append((f"target {target.name!r} (its LLM)", llm.api_key_secret, llm.api_key_env))
        for who, secret, env in keys:
            if env is not None and env not in allowed:
                suggestion = suggested_secret_name(env, target.name)
                raise ValidationError(
                    env_not_allowed(who, env, project, suggestion), field="api_key_env"
                )
            if secret is not None:
                if secrets is None:
                    secrets = {info.name for info in client.secrets.list(project)}
                if secret not in secrets:
                    raise ValidationError(
                        secret_not_set(who, secret, project), field="api_key_secret"
                    )


def change_traffic(
    client: Client, project: str, name: str, change: TrafficChange
) -> DeploymentRevision:
    """A new revision of ``name``: its newest revision with ``change`` applied."""
    current = client.registry.deployments.get(project, name)
    spec = retarget(current, change)
    return client.registry.deployments.create(
        project,
        name,
        spec=spec.model_dump(mode="json", exclude_unset=True),
        description=change.summary(),
        model=current.model,
        adapter=current.adapter,
    )


def newest_revisions(client: Client, project: str) -> list[DeploymentRevision]:
    """The newest revision of every deployment of ``project``, by name."""
    newest: dict[str, DeploymentRevision] = {}
    for revision in client.registry.deployments.list(project):  # newest first per name
        newest.setdefault(revision.name, revision)
    return [newest[name] for name in sorted(newest)]


def retarget(current: DeploymentRevision, change: TrafficChange) -> DeploymentSpec:
    """``current``'s spec with ``change`` applied, checked again as a whole."""
    _check_change(change)
    try:
        spec = parse_spec(current.spec)
    except ValidationError as error:
        raise ValidationError(
            f"deployment {current.name!r} revision {current.version} has no usable spec "
            f"({error.message}): apply a whole spec first (`genai deploy apply`)",
            field="spec",
        ) from None
    data = spec.model_dump(mode="json", exclude_unset=True)
    data.setdefault("fallbacks", [])
    if "shadow" in change.model_fields_set:
        _set_shadow(data, change.shadow)
    if change.weights:
        _set_weights(data, change.weights)
    if change.policy is not None:
        data["policy"] = change.policy
    if change.sticky_header is not None:
        data["sticky_header"] = change.sticky_header
    if change.shadow_sample is not None:
        if not data.get("shadow"):
            raise ValidationError(
                f"deployment {current.name!r} has no shadow to sample: name one with shadow",
                field="shadow_sample",
            )
        data["shadow"]["sample"] = change.shadow_sample
    return parse_spec(data)


def _check_change(change: TrafficChange) -> None:
    given = change.weights or change.policy or change.sticky_header
    if not given and change.shadow_sample is None and "shadow" not in change.model_fields_set:
        raise ValidationError(
            "nothing to change: give new weights, a policy, a sticky header, a shadow or a "
            "shadow sample",
            field="traffic",
        )
    if change.shadow and change.weights and change.shadow in change.weights:
        raise ValidationError(
            f"target {change.shadow!r} cannot be the shadow and take live traffic at once",
            field="shadow",
        )


def _names(data: dict[str, Any]) -> str:
    names = [t["name"] for t in data["targets"]]
    if data.get("shadow"):
        names.append(f"{data['shadow']['target']['name']} (shadow)")
    return ", ".join(names)


def _set_shadow(data: dict[str, Any], name: str | None) -> None:
    """Make target ``name`` the shadow (moving it out of the live targets or fallbacks), or
    drop the shadow when ``name`` is None or 'none'."""
    shadow = data.get("shadow")
    if name is None or name.lower() == "none":
        data.pop("shadow", None)
        return
    if shadow and shadow["target"]["name"] == name:
        return
    for group in ("targets", "fallbacks"):
        found = [t for t in data[group] if t["name"] == name]
        if found:
            data[group] = [t for t in data[group] if t["name"] != name]
            sample = shadow.get("sample", 1.0) if shadow else 1.0
            data["shadow"] = {"target": found[0], "sample": sample}
            return
    raise ValidationError(
        f"no target named {name!r} to shadow; the targets are: {_names(data)}", field="shadow"
    )


def _set_weights(data: dict[str, Any], weights: dict[str, float]) -> None:
    """New weights by target name; naming the shadow target moves it into the targets."""
    shadow = data.get("shadow")
    for name, weight in weights.items():
        target = next((t for t in data["targets"] if t["name"] == name), None)
        if target is None and shadow and shadow["target"]["name"] == name:
            target = dict(shadow["target"])
            data["targets"].append(target)
            data.pop("shadow")
            shadow = None
        if target is None:
            raise ValidationError(
                f"no target named {name!r} to weigh; the targets are: {_names(data)}",
                field="weights",
            )
        target["weight"] = weight
