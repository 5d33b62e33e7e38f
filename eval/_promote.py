"""Eval-gated promotion: move a prompt label, an adapter alias or a deployment's weights only
when an eval run's gate passes, with the run as the evidence.

:func:`promote` reads the run and its suite's thresholds back from the registry, compares it
with a baseline run when asked, and gates it (:func:`eval.gate`). Anything but a pass raises
:class:`PromotionRefused` (carrying the gate's result) and changes nothing. A pass moves:

- a prompt label or an adapter alias (``registry.aliases.set(..., evidence="eval:ID")``):
  the alias history entry and its ``alias.set`` audit event keep the evidence;
- a deployment's weights: a new revision (``registry.deployments.create``) whose
  description ends ``(evidence eval:ID)``, and a lineage edge eval run → that revision
  (relation ``promoted``) with an ``eval.promote`` audit event.

The registry checks roles and projects on every move, as for any caller: a run of another
project is not found (the same words as a missing one), and cannot be anyone's evidence.

:class:`PromotionRefused` is a :class:`~genai.errors.PolicyViolation`: nothing is wrong
with the call, the platform's rule (promote on a passing gate) refuses it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import pydantic
from pydantic import BaseModel, ConfigDict

from eval._gate import GateResult
from eval._load import gate_run
from genai.errors import PolicyViolation, ValidationError
from genai.gateway import TrafficChange, retarget
from genai.registry import AliasChange, DeploymentRevision, Ref

if TYPE_CHECKING:
    from genai import Client

__all__ = ["Promotion", "PromotionRefused", "promote", "traffic_revision"]

Kind = Literal["prompt", "adapter", "deployment"]


class PromotionRefused(PolicyViolation):
    """The gate did not pass: nothing was moved. ``gate`` is its result (every check, and
    the exit code a CI job should end with)."""

    code = "promotion_refused"

    def __init__(self, result: GateResult, *, subject: str) -> None:
        failed = [c for c in result.checks if c.outcome != "pass"]
        why = "; ".join(f"{c.metric} {c.rule}: {c.outcome} ({c.detail})" for c in failed[:3])
        super().__init__(
            f"eval:{result.run} did not pass its gate ({result.outcome}): {subject} was not "
            f"moved. {why}"
        )
        self.gate = result

    @property
    def exit_code(self) -> int:
        return self.gate.exit_code


class Promotion(BaseModel):
    """What a passing gate moved. ``subject`` is what moved (``prompt:qa@production``,
    ``deployment:chat``), ``promoted`` the version it names now; ``moved`` is False when
    the alias already pointed there. ``evaluated`` are the run's inputs (what it
    evaluated); ``covered`` says whether the promoted version is among them (a deployment:
    any revision of it)."""

    model_config = ConfigDict(frozen=True)

    eval: str
    kind: Kind
    subject: str
    promoted: str
    moved: bool
    gate: GateResult
    evaluated: list[str]
    covered: bool
    alias: AliasChange | None = None
    revision: DeploymentRevision | None = None


def promote(
    client: Client,
    project: str,
    eval_id: str,
    *,
    prompt: str | None = None,
    label: str | None = None,
    adapter: str | None = None,
    alias: str | None = None,
    deployment: str | None = None,
    weights: Mapping[str, float] | None = None,
    baseline: str | None = None,
) -> Promotion:
    """Move exactly one of: ``prompt`` (``NAME@VERSION``) to ``label``; ``adapter``
    (``NAME@VERSION``) to ``alias``; ``deployment`` to ``weights`` (target → weight) —
    when eval run ``eval_id`` of ``project`` passes its suite's gate (against ``baseline``,
    an eval id or a target, when given). Raises :class:`PromotionRefused` otherwise."""
    move = _what(prompt, label, adapter, alias, deployment, weights)
    info = client.registry.evals.get(project, eval_id.removeprefix("eval:"))
    if weights is not None:  # a target the deployment lacks is refused before gating
        retarget(client.registry.deployments.get(project, move.ref), _change(weights))
    result, _, _ = gate_run(client, project, info.id, baseline=baseline)
    if result.outcome != "pass":
        raise PromotionRefused(result, subject=move.subject)
    if weights is not None:
        revision = traffic_revision(client, project, move.ref, weights, evidence=info.ref)
        return Promotion(
            eval=info.ref,
            kind=move.kind,
            subject=move.subject,
            promoted=client.registry.evals.link_promoted(project, info.id, revision.ref),
            moved=True,
            gate=result,
            evaluated=info.inputs,
            covered=any(i.startswith(f"deployment:{move.ref}@") for i in info.inputs),
            revision=revision,
        )
    change = client.registry.aliases.set(project, move.ref, move.alias, evidence=info.ref)
    promoted = f"{change.kind}:{change.name}@{change.to_version}"
    return Promotion(
        eval=info.ref,
        kind=move.kind,
        subject=move.subject,
        promoted=promoted,
        moved=change.from_version != change.to_version,
        gate=result,
        evaluated=info.inputs,
        covered=promoted in info.inputs,
        alias=change,
    )


def traffic_revision(
    client: Client,
    project: str,
    deployment: str,
    weights: Mapping[str, float],
    *,
    evidence: str,
) -> DeploymentRevision:
    """A new revision of ``deployment``: its newest with ``weights`` (target → weight), the
    description naming the change and its ``evidence``."""
    current = client.registry.deployments.get(project, deployment)
    change = _change(weights)
    spec = retarget(current, change)
    return client.registry.deployments.create(
        project,
        deployment,
        spec=spec.model_dump(mode="json", exclude_unset=True),
        description=f"{change.summary()} (evidence {evidence})",
        model=current.model,
        adapter=current.adapter,
    )


def _change(weights: Mapping[str, float]) -> TrafficChange:
    try:
        return TrafficChange(weights=dict(weights))
    except pydantic.ValidationError as error:
        raise ValidationError(
            f"weights {dict(weights)!r}: {error.errors()[0]['msg']} (target → weight, each at "
            "least 0)",
            field="weights",
        ) from None


@dataclass(frozen=True)
class _Move:
    kind: Kind
    ref: str  # the version to alias (prompt:qa@3), or the deployment's name
    alias: str  # the label or alias ('' for a deployment)

    @property
    def subject(self) -> str:
        if self.kind == "deployment":
            return f"deployment:{self.ref}"
        return f"{self.kind}:{Ref.parse(self.ref).name}@{self.alias}"


def _what(
    prompt: str | None,
    label: str | None,
    adapter: str | None,
    alias: str | None,
    deployment: str | None,
    weights: Mapping[str, float] | None,
) -> _Move:
    """Which move: exactly one pair, both of its halves given."""
    pairs: list[tuple[Kind, str | None, object, str]] = [
        ("prompt", prompt, label, "label"),
        ("adapter", adapter, alias, "alias"),
        ("deployment", deployment, weights, "weights"),
    ]
    chosen = [p for p in pairs if p[1] is not None or p[2] is not None]
    if len(chosen) != 1:
        raise ValidationError(
            "promote exactly one of: a prompt version to a label (prompt and label), an "
            "adapter version to an alias (adapter and alias), or a deployment's weights "
            "(deployment and weights)",
            field="promote",
        )
    kind, what, where, second = chosen[0]
    if what is None or not where:
        raise ValidationError(f"promoting a {kind} needs its {second} too", field=second)
    if kind == "deployment":
        return _Move(kind, what, "")
    return _Move(kind, str(Ref.parse(what, kind=kind)), str(where))
