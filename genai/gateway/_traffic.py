"""Traffic policies (weighted canary, sticky A/B, Thompson-sampling bandit), circuit
breakers per upstream, and the order in which a request tries targets."""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from genai.gateway._spec import DeploymentSpec, TargetSpec

__all__ = ["Bandit", "Circuit", "Circuits", "choose", "plan_attempts", "sticky_point"]


def sticky_point(*parts: str) -> float:
    """A stable number in [0, 1) for a sticky key: the same user lands on the same arm."""
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _by_weight(targets: list[TargetSpec], point: float) -> TargetSpec:
    live = [t for t in targets if t.weight > 0] or targets
    total = sum(t.weight for t in live) or float(len(live))
    edge = 0.0
    for target in live:
        edge += (target.weight or 1.0) / total
        if point < edge:
            return target
    return live[-1]


def choose(
    spec: DeploymentSpec,
    *,
    project: str,
    deployment: str,
    sticky_value: str | None,
    bandit: Bandit | None,
    rng: random.Random,
) -> TargetSpec:
    """The target of one request under the deployment's policy."""
    if len(spec.targets) == 1:
        return spec.targets[0]
    if spec.policy == "bandit" and bandit is not None:
        return bandit.pick([t for t in spec.targets if t.weight > 0] or spec.targets, rng)
    if spec.policy == "ab" and sticky_value:
        return _by_weight(spec.targets, sticky_point(project, deployment, sticky_value))
    return _by_weight(spec.targets, rng.random())


class Bandit:
    """Thompson sampling over a deployment's targets: each arm's reward is Beta-distributed;
    a reward in [0, 1] adds r to alpha and 1 - r to beta."""

    def __init__(self, prior_alpha: float = 1.0, prior_beta: float = 1.0) -> None:
        self._prior = (prior_alpha, prior_beta)
        self._arms: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def pick(self, targets: list[TargetSpec], rng: random.Random) -> TargetSpec:
        with self._lock:
            draws = [(rng.betavariate(*self._params(t.name)), t) for t in targets]
        return max(draws, key=lambda d: d[0])[1]

    def reward(self, arm: str, value: float) -> None:
        value = min(1.0, max(0.0, value))
        with self._lock:
            params = self._arms.setdefault(arm, list(self._prior))
            params[0] += value
            params[1] += 1.0 - value

    def seed(self, totals: Mapping[str, tuple[float, float]]) -> None:
        """Start from recorded rewards: arm → (sum of rewards, number of rewards)."""
        with self._lock:
            for arm, (rewards, count) in totals.items():
                self._arms[arm] = [self._prior[0] + rewards, self._prior[1] + count - rewards]

    def _params(self, arm: str) -> tuple[float, float]:
        alpha, beta = self._arms.get(arm, self._prior)
        return alpha, beta

    def means(self) -> dict[str, float]:
        with self._lock:
            return {arm: a / (a + b) for arm, (a, b) in self._arms.items()}


@dataclass
class Circuit:
    """Closed → open after ``failures`` failures in a row → one trial after ``reset_s``
    (seconds of ``clock``)."""

    failures: int
    reset_s: float
    state: str = "closed"
    consecutive: int = 0
    opened_at: float = 0.0
    trial_in_flight: bool = False
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)

    def allow(self) -> bool:
        if self.state == "closed":
            return True
        if self.state == "open" and self.clock() - self.opened_at >= self.reset_s:
            self.state = "half_open"
        if self.state == "half_open" and not self.trial_in_flight:
            self.trial_in_flight = True
            return True
        return False

    def success(self) -> None:
        self.state, self.consecutive, self.trial_in_flight = "closed", 0, False

    def abandon(self) -> None:
        """A call ended without an answer either way (its caller left)."""
        self.trial_in_flight = False

    def failure(self) -> None:
        self.consecutive += 1
        self.trial_in_flight = False
        if self.state == "half_open" or self.consecutive >= self.failures:
            self.state, self.opened_at = "open", self.clock()

    def retry_after(self) -> float:
        return max(0.0, self.reset_s - (self.clock() - self.opened_at))


class Circuits:
    """One circuit per upstream (its URL and model), shared by every deployment using it.

    At most ``max_circuits`` are kept: past it, the oldest closed ones go (a closed circuit
    holds nothing a new one would not), then the oldest of any state. ``clock`` gives the
    seconds their reset times count in (tests pass one they move by hand)."""

    def __init__(
        self, max_circuits: int = 10_000, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._circuits: dict[str, Circuit] = {}
        self._max = max_circuits
        self._clock = clock

    def get(self, target: TargetSpec, spec: DeploymentSpec) -> Circuit:
        key = target_key(target)
        circuit = self._circuits.get(key)
        if circuit is None:
            if len(self._circuits) >= self._max:
                self._forget()
            circuit = Circuit(spec.circuit.failures, spec.circuit.reset_s, clock=self._clock)
            self._circuits[key] = circuit
        return circuit

    def __len__(self) -> int:
        return len(self._circuits)

    def _forget(self) -> None:
        keep = self._max * 9 // 10
        for key in [k for k, c in self._circuits.items() if c.state == "closed"]:
            if len(self._circuits) <= keep:
                return
            del self._circuits[key]
        while len(self._circuits) > keep:
            self._circuits.pop(next(iter(self._circuits)))

    def states(self) -> dict[str, str]:
        return {key: c.state for key, c in self._circuits.items()}


def target_key(target: TargetSpec) -> str:
    return f"{target.url or 'backend:' + (target.backend or '')}|{target.upstream_model or ''}"


def plan_attempts(spec: DeploymentSpec, chosen: TargetSpec) -> list[TargetSpec]:
    """The chosen target, then the fallbacks in order (each target once)."""
    seen, plan = set(), []
    for target in [chosen, *spec.fallbacks]:
        if target.name not in seen:
            seen.add(target.name)
            plan.append(target)
    return plan
