"""Traffic policies of the gateway without servers: the weighted canary, sticky A/B, the
Thompson-sampling bandit, circuit breakers and the order of attempts.

Splits are checked against a binomial tolerance of four standard deviations (a false
alarm about once in 16,000 runs); the random generators are seeded where the gateway lets
a caller pass one, so these tests are repeatable.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from typing import Any

import pytest

from genai.gateway import DeploymentSpec, parse_spec
from genai.gateway._traffic import Bandit, Circuit, Circuits, choose, plan_attempts, sticky_point


def _spec(*weights: float, policy: str = "weighted", **extra: Any) -> DeploymentSpec:
    targets = [
        {"name": f"t{i}", "url": f"http://127.0.0.1:{9000 + i}/v1", "model": "m", "weight": w}
        for i, w in enumerate(weights)
    ]
    return parse_spec({"targets": targets, "policy": policy, **extra})


def _within(count: int, n: int, p: float, sigmas: float = 4.0) -> bool:
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


def _picks(spec: DeploymentSpec, n: int, *, sticky: Any = None, seed: int = 7) -> Counter[str]:
    rng = random.Random(seed)
    return Counter(
        choose(
            spec,
            project="proj",
            deployment="chat",
            sticky_value=sticky(i) if sticky else None,
            bandit=None,
            rng=rng,
        ).name
        for i in range(n)
    )


# ------------------------------------------------------------------ weighted canary


@pytest.mark.parametrize("weights", [(90, 10), (0.7, 0.2, 0.1), (1, 1, 1, 1)])
def test_weighted_split_follows_the_weights(weights: tuple[float, ...]) -> None:
    n = 20_000
    counts = _picks(_spec(*weights), n)
    total = sum(weights)
    for i, weight in enumerate(weights):
        assert _within(counts[f"t{i}"], n, weight / total), (counts, weights)


def test_a_target_of_weight_zero_is_never_chosen() -> None:
    counts = _picks(_spec(0, 3, 0, 1), 5_000)
    assert set(counts) == {"t1", "t3"}
    assert _within(counts["t1"], 5_000, 0.75)


def test_a_single_target_takes_everything_whatever_its_weight() -> None:
    spec = _spec(0, policy="ab")
    assert _picks(spec, 50, sticky=str) == Counter({"t0": 50})


def test_a_weighted_policy_needs_some_weight() -> None:
    from genai.errors import ValidationError

    with pytest.raises(ValidationError, match="weight above 0"):
        _spec(0, 0)


# ------------------------------------------------------------------ sticky A/B


def test_sticky_point_is_stable_uniform_and_scoped_by_project_and_deployment() -> None:
    points = [sticky_point("proj", "chat", f"user-{i}") for i in range(10_000)]
    assert points == [sticky_point("proj", "chat", f"user-{i}") for i in range(10_000)]
    assert all(0 <= p < 1 for p in points)
    for low in (0.0, 0.25, 0.5, 0.75):
        inside = sum(low <= p < low + 0.25 for p in points)
        assert _within(inside, len(points), 0.25)
    # another project (or deployment) reshuffles its users independently
    other = [sticky_point("other", "chat", f"user-{i}") for i in range(10_000)]
    same_half = sum((a < 0.5) == (b < 0.5) for a, b in zip(points, other, strict=True))
    assert _within(same_half, len(points), 0.5)
    # the separator keeps ("a", "bc") and ("ab", "c") apart
    assert sticky_point("a", "bc", "u") != sticky_point("ab", "c", "u")


def test_sticky_ab_keeps_each_user_on_one_arm_and_splits_users_by_weight() -> None:
    spec = _spec(30, 70, policy="ab")
    arms: dict[int, str] = {}
    for seed in range(5):  # the random generator plays no part for a known user
        picks = _picks(spec, 2_000, sticky=lambda i: f"user-{i}", seed=seed)
        assert sum(picks.values()) == 2_000
        for i in range(2_000):
            arm = choose(
                spec,
                project="proj",
                deployment="chat",
                sticky_value=f"user-{i}",
                bandit=None,
                rng=random.Random(seed),
            ).name
            assert arms.setdefault(i, arm) == arm
    assert _within(sum(a == "t0" for a in arms.values()), 2_000, 0.3)


def test_ab_without_the_sticky_value_falls_back_to_a_weighted_draw() -> None:
    counts = _picks(_spec(1, 1, policy="ab"), 4_000)
    assert _within(counts["t0"], 4_000, 0.5)


def test_a_weighted_policy_ignores_the_sticky_value() -> None:
    counts = _picks(_spec(1, 1), 4_000, sticky=lambda i: "always-the-same-user")
    assert _within(counts["t0"], 4_000, 0.5)


# ------------------------------------------------------------------ bandit


def _simulate(
    bandit: Bandit, spec: DeploymentSpec, p: dict[str, float], rounds: int, seed: int
) -> list[str]:
    """Thompson sampling against Bernoulli arms: pick, observe a 0/1 reward, learn."""
    rng, world = random.Random(seed), random.Random(seed + 1000)
    picks = []
    for _ in range(rounds):
        arm = choose(
            spec, project="proj", deployment="chat", sticky_value=None, bandit=bandit, rng=rng
        ).name
        picks.append(arm)
        bandit.reward(arm, 1.0 if world.random() < p[arm] else 0.0)
    return picks


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_bandit_converges_to_the_better_bernoulli_arm(seed: int) -> None:
    spec = _spec(1, 1, 1, policy="bandit")
    bandit = Bandit()
    p = {"t0": 0.35, "t1": 0.7, "t2": 0.5}
    picks = _simulate(bandit, spec, p, 2_000, seed)
    late = Counter(picks[-500:])
    assert late["t1"] >= 0.85 * 500, late
    means = bandit.means()
    assert max(means, key=means.__getitem__) == "t1"
    assert abs(means["t1"] - 0.7) < 0.05
    # every arm was explored, and the worst one least
    overall = Counter(picks)
    assert set(overall) == {"t0", "t1", "t2"}
    assert overall["t0"] < overall["t2"] < overall["t1"]


def test_the_bandit_weighs_cost_when_rewards_carry_a_penalty() -> None:
    """Equal quality, one arm expensive: with ``score - cost_weight * cost`` as the reward
    (what ``/v1/feedback`` gives), the cheap arm wins."""
    spec = _spec(1, 1, policy="bandit", bandit={"cost_weight": 2.0})
    bandit, rng = Bandit(), random.Random(5)
    cost = {"t0": 0.01, "t1": 0.3}
    picks = []
    for _ in range(600):
        arm = choose(
            spec, project="p", deployment="d", sticky_value=None, bandit=bandit, rng=rng
        ).name
        picks.append(arm)
        bandit.reward(arm, 0.9 - spec.bandit.cost_weight * cost[arm])
    assert Counter(picks[-200:])["t0"] >= 180


def test_rewards_are_clamped_to_zero_and_one() -> None:
    bandit = Bandit()
    bandit.reward("a", 7.0)
    bandit.reward("b", -3.0)
    assert bandit.means() == {"a": 2 / 3, "b": 1 / 3}


def test_a_seeded_bandit_starts_from_recorded_rewards() -> None:
    spec = _spec(1, 1, policy="bandit")
    bandit = Bandit(prior_alpha=1, prior_beta=1)
    bandit.seed({"t0": (45.0, 50.0), "t1": (5.0, 50.0)})
    assert bandit.means() == pytest.approx({"t0": 46 / 52, "t1": 6 / 52})
    rng = random.Random(3)
    picks = Counter(bandit.pick(spec.targets, rng).name for _ in range(1_000))
    assert picks["t0"] >= 990


def test_an_unknown_arm_draws_from_the_prior() -> None:
    spec = _spec(1, 1, policy="bandit")
    bandit = Bandit(prior_alpha=1, prior_beta=1)
    bandit.seed({"t0": (3.0, 6.0)})  # t1 has no feedback yet: Beta(1, 1)
    rng = random.Random(11)
    counts = Counter(bandit.pick(spec.targets, rng).name for _ in range(4_000))
    # P(Beta(4, 4) > Beta(1, 1)) is exactly 1/2
    assert _within(counts["t0"], 4_000, 0.5)


# ------------------------------------------------------------------ circuits


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_circuit_opens_after_n_consecutive_failures_only() -> None:
    clock = _Clock()
    circuit = Circuit(failures=3, reset_s=60, clock=clock)
    circuit.failure()
    circuit.failure()
    circuit.success()  # a success in between starts the count again
    circuit.failure()
    circuit.failure()
    assert circuit.state == "closed" and circuit.allow()
    circuit.failure()
    assert circuit.state == "open"
    assert not circuit.allow()
    clock.now += 1.5
    assert circuit.retry_after() == 58.5


def test_an_open_circuit_lets_one_trial_through_after_reset_and_closes_on_success() -> None:
    clock = _Clock()
    circuit = Circuit(failures=1, reset_s=5, clock=clock)
    circuit.failure()
    clock.now += 4.9
    assert not circuit.allow()
    clock.now += 0.1
    assert circuit.allow()  # the trial
    assert circuit.state == "half_open"
    assert not circuit.allow()  # one trial at a time
    circuit.success()
    assert circuit.state == "closed"
    assert all(circuit.allow() for _ in range(5))


def test_a_failed_trial_opens_the_circuit_again_for_another_reset_period() -> None:
    clock = _Clock()
    circuit = Circuit(failures=5, reset_s=5, clock=clock)
    for _ in range(5):
        circuit.failure()
    clock.now += 5
    assert circuit.allow()
    circuit.failure()  # one failure in half-open is enough
    assert circuit.state == "open"
    assert not circuit.allow()
    assert circuit.retry_after() == 5  # counted from the failed trial
    clock.now += 5
    assert circuit.allow()


def test_circuits_give_their_clock_to_every_circuit() -> None:
    clock = _Clock()
    spec = _spec(1, 1, circuit={"failures": 1, "reset_s": 9})
    circuit = Circuits(clock=clock).get(spec.targets[0], spec)
    circuit.failure()
    clock.now += 9
    assert circuit.allow() and circuit.state == "half_open"


def test_circuits_are_per_upstream_and_shared_by_deployments() -> None:
    one = _spec(1, 1, circuit={"failures": 2, "reset_s": 9})
    two = parse_spec(
        {
            "targets": [
                {"name": "other-name", "url": "http://127.0.0.1:9000/v1", "model": "m"},
                {"name": "other-model", "url": "http://127.0.0.1:9000/v1", "model": "n"},
            ]
        }
    )
    circuits = Circuits()
    first = circuits.get(one.targets[0], one)
    assert circuits.get(two.targets[0], two) is first  # same URL and model
    assert circuits.get(two.targets[1], two) is not first  # another model
    assert circuits.get(one.targets[1], one) is not first  # another URL
    assert (first.failures, first.reset_s) == (2, 9)
    first.failure()
    first.failure()
    assert circuits.states()["http://127.0.0.1:9000/v1|m"] == "open"


def test_circuits_are_bounded_and_forget_closed_ones_before_open_ones() -> None:
    def target(i: int) -> dict[str, object]:
        return {"name": f"t{i}", "url": f"http://127.0.0.1:{9000 + i}/v1", "model": "m"}

    spec = parse_spec({"targets": [target(i) for i in range(30)], "circuit": {"failures": 1}})
    circuits = Circuits(max_circuits=10)
    opened = circuits.get(spec.targets[0], spec)
    opened.failure()  # the oldest, but open: it outlives closed ones
    for t in spec.targets[1:]:
        circuits.get(t, spec)
    assert len(circuits) <= 10
    assert circuits.states()["http://127.0.0.1:9000/v1|m"] == "open"


# ------------------------------------------------------------------ attempts


def test_attempts_go_to_the_chosen_target_then_each_fallback_once() -> None:
    spec = parse_spec(
        {
            "targets": [
                {"name": "a", "url": "http://127.0.0.1:1/v1", "model": "m"},
                {"name": "b", "url": "http://127.0.0.1:2/v1", "model": "m"},
            ],
            "fallbacks": [
                {"name": "c", "url": "http://127.0.0.1:3/v1", "model": "m"},
                {"name": "d", "url": "http://127.0.0.1:4/v1", "model": "m"},
            ],
        }
    )
    assert [t.name for t in plan_attempts(spec, spec.targets[1])] == ["b", "c", "d"]
    assert [t.name for t in plan_attempts(spec, spec.target("c"))] == ["c", "d"]
