"""A staged canary: raise a target's share of a deployment's traffic step by step while an
online signal holds, and roll back by itself on a significant regression.

For each step (a percentage, e.g. 5, 25, 50, 100) :func:`canary` makes a new deployment
revision with the canary target at that weight and the stable target at the rest (its
description names the step: the registry audits it as any revision). It then watches the
signal for the answers given since that revision was made, until each arm has at least
``min_requests`` scored answers, and compares canary with stable as two independent
samples (:func:`eval.compare_independent`):

- ``worse`` (a significant regression): roll back at once;
- ``better`` or ``no-difference`` (no regression of ``margin`` or more could hide in the
  sample): the next step;
- still ``inconclusive`` (or too few answers) when the step has waited ``timeout_s``:
  roll back. Holding a canary nobody can judge is not safe, so the safe outcome wins.

A step of 100 gives the canary all the traffic: there is no stable arm left to compare,
so it ends the canary as ``promoted``; the last step must be 100. A rollback is a new
revision with the canary at weight 0 and the stable target at 100, its reason in the
description. An exception on the way (Ctrl-C, a store that went away) rolls back too
before it propagates, once traffic has moved.

Each step's comparison looks again at every poll: repeated looks make a false alarm
(a rollback of a good canary) more likely than ``alpha``, never a missed regression — the
cheap error, for a canary.

Signals are plug-ins behind :class:`Signal`: the scores per arm of the answers given since
a time. ``feedback`` (:class:`FeedbackSignal`) reads the callers' ``POST /v1/feedback``
scores by the target that answered. A sampled judge plugs in the same way: a signal whose
``scores`` are a judge's verdicts on a sample of each arm's answers (as the gateway's
shadow comparisons are stored), returned per arm.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from eval._promote import traffic_revision
from eval._stats import Comparison
from eval._stats_unpaired import compare_independent
from genai.errors import ValidationError

if TYPE_CHECKING:
    from genai import Client
    from genai.registry import DeploymentRevision

__all__ = ["SIGNALS", "CanaryResult", "CanaryStep", "FeedbackSignal", "Signal", "canary"]

StepOutcome = Literal["held", "regressed", "inconclusive", "promoted"]


@runtime_checkable
class Signal(Protocol):
    """An online signal: per arm (target name), the scores of the answers of ``deployment``
    given at or after ``since``. ``higher_is_better`` says which way a regression goes."""

    @property
    def name(self) -> str: ...

    @property
    def higher_is_better(self) -> bool: ...

    def scores(
        self,
        client: Client,
        project: str,
        deployment: str,
        *,
        arms: Sequence[str],
        since: datetime,
    ) -> Mapping[str, Sequence[float]]: ...


class FeedbackSignal:
    """Callers' feedback (``POST /v1/feedback``: 0 bad to 1 good), by the target that gave
    the answer (the usage ledger's row of the same request); an answer scored twice counts
    once, with its latest score."""

    name = "feedback"
    higher_is_better = True

    def scores(
        self,
        client: Client,
        project: str,
        deployment: str,
        *,
        arms: Sequence[str],
        since: datetime,
    ) -> Mapping[str, Sequence[float]]:
        out: dict[str, list[float]] = {arm: [] for arm in arms}
        for row in client.usage.feedback(project, deployment, since=since, targets=arms):
            out[row.target].append(row.score)
        return out


#: Signals by name (``canary(signal="feedback")``); register one in a line.
SIGNALS: dict[str, Callable[[], Signal]] = {"feedback": FeedbackSignal}


class CanaryStep(BaseModel):
    """One step: the canary's share, the revision that set it, what each arm scored and
    what the comparison said."""

    model_config = ConfigDict(frozen=True)

    percent: float
    revision: str
    outcome: StepOutcome
    canary_n: int = 0
    stable_n: int = 0
    comparison: Comparison | None = None


class CanaryResult(BaseModel):
    """How a canary ended: ``promoted`` (it takes all the traffic) or ``rolled-back`` (the
    stable target does), why, and the revision that says so."""

    model_config = ConfigDict(frozen=True)

    deployment: str
    canary: str
    stable: str
    signal: str
    status: Literal["promoted", "rolled-back"]
    reason: str
    revision: str
    steps: list[CanaryStep]

    @property
    def exit_code(self) -> int:
        return 0 if self.status == "promoted" else 1


def canary(
    client: Client,
    project: str,
    deployment: str,
    *,
    canary: str,
    stable: str,
    steps: Sequence[float] = (5, 25, 50, 100),
    min_requests: int = 50,
    signal: str | Signal = "feedback",
    alpha: float = 0.05,
    margin: float = 0.05,
    poll_s: float = 30.0,
    timeout_s: float = 3600.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    on_step: Callable[[CanaryStep], None] | None = None,
) -> CanaryResult:
    """Move ``deployment``'s traffic from ``stable`` to ``canary`` (target names) through
    ``steps`` (percentages, rising, the last 100), watching ``signal`` (see the module
    docstring). ``timeout_s`` bounds each step's wait; ``clock`` and ``sleep`` (seconds)
    are injectable, so a test waits for nothing."""
    plan = _Plan(deployment, canary, stable, tuple(float(p) for p in steps))
    watch = _Watch(
        signal=_signal(signal),
        min_requests=_positive_int(min_requests, "min_requests"),
        alpha=alpha,
        margin=margin,
        poll_s=poll_s,
        timeout_s=timeout_s,
        clock=clock,
        sleep=sleep,
    )
    plan.check(client, project)
    done: list[CanaryStep] = []
    try:
        for number, percent in enumerate(plan.steps, 1):
            why = f"canary step {number}/{len(plan.steps)}"
            revision = plan.move(client, project, percent, why)
            if percent >= 100.0:
                done.append(CanaryStep(percent=percent, revision=revision.ref, outcome="promoted"))
                _tell(on_step, done[-1])
                return plan.result(watch, "promoted", "every step held", revision, done)
            step = watch.step(client, project, plan, percent, revision)
            done.append(step)
            _tell(on_step, step)
            if step.outcome != "held":
                reason = _why(step, watch)
                back = plan.roll_back(client, project, reason)
                return plan.result(watch, "rolled-back", reason, back, done)
    except BaseException as error:
        if plan.moved:
            with contextlib.suppress(Exception):
                plan.roll_back(client, project, f"interrupted ({type(error).__name__})")
        raise
    raise AssertionError("unreachable: the last step is 100")  # pragma: no cover


class _Plan:
    """The deployment, its two arms and the steps; the revisions it makes."""

    def __init__(self, deployment: str, canary: str, stable: str, steps: tuple[float, ...]):
        if canary == stable:
            raise ValidationError("the canary and the stable target must differ", field="canary")
        if not steps or any(not 0.0 < p <= 100.0 for p in steps):
            raise ValidationError(
                f"steps {list(steps)}: percentages above 0, at most 100", field="steps"
            )
        if list(steps) != sorted(set(steps)) or steps[-1] != 100.0:
            raise ValidationError(
                f"steps {list(steps)}: rising, and the last one 100 (the canary is promoted "
                "when it takes all the traffic)",
                field="steps",
            )
        self.deployment, self.canary, self.stable, self.steps = deployment, canary, stable, steps
        self.moved = False

    def check(self, client: Client, project: str) -> None:
        """The deployment exists in the project and routes by weight."""
        current = client.registry.deployments.get(project, self.deployment)
        if current.spec.get("policy") == "bandit":
            raise ValidationError(
                f"deployment {self.deployment!r} routes by bandit, which ignores weights: "
                "set policy weighted (or ab) first (`genai deploy traffic --policy weighted`)",
                field="policy",
            )

    def move(self, client: Client, project: str, percent: float, why: str) -> DeploymentRevision:
        weights = {self.canary: percent, self.stable: 100.0 - percent}
        note = f"{why}: {self.canary} {percent:g}%"
        revision = traffic_revision(client, project, self.deployment, weights, evidence=note)
        self.moved = True
        return revision

    def roll_back(self, client: Client, project: str, reason: str) -> DeploymentRevision:
        weights = {self.canary: 0.0, self.stable: 100.0}
        note = f"canary rollback: {reason}"
        return traffic_revision(client, project, self.deployment, weights, evidence=note)

    def result(
        self,
        watch: _Watch,
        status: Literal["promoted", "rolled-back"],
        reason: str,
        revision: DeploymentRevision,
        steps: list[CanaryStep],
    ) -> CanaryResult:
        return CanaryResult(
            deployment=self.deployment,
            canary=self.canary,
            stable=self.stable,
            signal=watch.signal.name,
            status=status,
            reason=reason,
            revision=revision.ref,
            steps=steps,
        )


class _Watch:
    """How a step is watched: the signal, the sample it needs and the clock it waits by."""

    def __init__(
        self,
        *,
        signal: Signal,
        min_requests: int,
        alpha: float,
        margin: float,
        poll_s: float,
        timeout_s: float,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
    ) -> None:
        if not (poll_s > 0 and timeout_s > 0):
            raise ValidationError("poll_s and timeout_s must be above 0", field="poll_s")
        if not (0.0 < alpha < 1.0 and margin >= 0.0):
            raise ValidationError("alpha must be in (0, 1) and margin at least 0", field="alpha")
        self.signal, self.min_requests = signal, min_requests
        self.alpha, self.margin = alpha, margin
        self.poll_s, self.timeout_s, self.clock, self.sleep = poll_s, timeout_s, clock, sleep

    def step(
        self,
        client: Client,
        project: str,
        plan: _Plan,
        percent: float,
        revision: DeploymentRevision,
    ) -> CanaryStep:
        """Poll until the comparison decides, or the step times out (inconclusive)."""
        start = self.clock()
        while True:
            arms = self.signal.scores(
                client,
                project,
                plan.deployment,
                arms=(plan.canary, plan.stable),
                since=revision.created_at,
            )
            new, old = list(arms.get(plan.canary, ())), list(arms.get(plan.stable, ()))
            comparison = self._compare(old, new)
            outcome = _outcome(comparison)
            if outcome is None and self.clock() - start >= self.timeout_s:
                outcome = "inconclusive"
            if outcome is not None:
                return CanaryStep(
                    percent=percent,
                    revision=revision.ref,
                    outcome=outcome,
                    canary_n=len(new),
                    stable_n=len(old),
                    comparison=comparison,
                )
            self.sleep(self.poll_s)

    def _compare(self, stable: list[float], canary: list[float]) -> Comparison | None:
        if min(len(stable), len(canary)) < self.min_requests:
            return None
        return compare_independent(
            stable,
            canary,
            metric=self.signal.name,
            higher_is_better=self.signal.higher_is_better,
            margin=self.margin,
            alpha=self.alpha,
        )


def _outcome(comparison: Comparison | None) -> StepOutcome | None:
    """What a comparison decides now: None to keep watching."""
    if comparison is None or comparison.verdict == "inconclusive":
        return None
    return "regressed" if comparison.verdict == "worse" else "held"


def _why(step: CanaryStep, watch: _Watch) -> str:
    c = step.comparison
    if c is None:
        return (
            f"too few scored answers after {watch.timeout_s:g}s at {step.percent:g}% "
            f"(canary {step.canary_n}, stable {step.stable_n}; {watch.min_requests} each needed)"
        )
    text = (
        f"{c.metric} canary {_num(c.candidate)} vs stable {_num(c.baseline)}, diff {_num(c.diff)} "
        f"[{_num(c.low)}, {_num(c.high)}], p={_num(c.p_value)}, n={step.canary_n}+"
        f"{step.stable_n} ({c.test})"
    )
    if step.outcome == "regressed":
        return f"significant regression at {step.percent:g}%: {text}"
    return f"inconclusive after {watch.timeout_s:g}s at {step.percent:g}%: {text}"


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def _tell(on_step: Callable[[CanaryStep], None] | None, step: CanaryStep) -> None:
    if on_step is not None:
        on_step(step)


def _signal(signal: str | Signal) -> Signal:
    if not isinstance(signal, str):
        return signal
    if signal not in SIGNALS:
        raise ValidationError(
            f"unknown signal {signal!r}: use one of {', '.join(sorted(SIGNALS))}", field="signal"
        )
    return SIGNALS[signal]()


def _positive_int(value: int, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 2:
        raise ValidationError(f"{field} must be a whole number of at least 2", field=field)
    return value
