"""A change of a deployment's traffic (weights, policy, sticky header, shadow), applied to a
revision's spec: the pure part that ``genai deploy traffic``, the admin API and eval-gated
promotion share. Making the new revision is the registry's (``deployments.create``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from genai.errors import ValidationError
from genai.gateway._spec import DeploymentSpec, parse_spec

if TYPE_CHECKING:
    from genai.registry import DeploymentRevision

__all__ = ["TrafficChange", "retarget"]


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
