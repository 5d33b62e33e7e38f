"""Eval-gated promotion and staged canaries through a real gateway, on SQLite and PostgreSQL.

Eval runs answer through the live gateway (``eval.run``), then ``eval.promote`` moves a
prompt label, an adapter alias or a deployment's weights only on a passing gate, with the
run as the evidence in the alias history, the lineage graph and the audit log. A canary
is driven by real requests (the openai SDK) and real ``POST /v1/feedback`` scores, its
waits an injected clock: the canary's low scores (an injected regression) roll it back by
itself; equal scores take it to 100%. One project never promotes with, or moves anything
of, another's runs.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from _gateway_harness import GENAI, GatewayProject, LiveGateway, new_project

import eval as ev
import genai
from genai.errors import NotFoundError, PolicyViolation
from genai.gateway import GatewayOptions, GatewayRequest, Stages, TargetSpec
from genai.testing import ManualClock

P = "shop"
CAPITALS = {
    "capital of France?": "Paris",
    "capital of Italy?": "Rome",
    "capital of Spain?": "Madrid",
    "capital of Peru?": "Lima",
    "capital of Chile?": "Santiago",
    "capital of Japan?": "Tokyo",
}
SUITE = """\
name: capitals
dataset: {data}
max_retries: 0
metrics: [exact_match]
thresholds:
  - {{metric: exact_match, min: {bound}}}
"""
TWO_ARMS = {
    "targets": [
        {"name": "stable", "backend": "arms", "weight": 100},
        {"name": "canary", "backend": "arms", "weight": 0},
    ],
    "retries": 0,
}


class Arms:
    """A gateway target stage: target ``bad`` answers every capital wrong, the others
    right; any other question is answered "from <target>" (which arm answered)."""

    name = "arms"

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    async def complete(self, request: GatewayRequest, target: TargetSpec) -> dict[str, Any]:
        question = request.body["messages"][-1]["content"]
        with self._lock:
            self.calls[target.name] += 1
        if question in CAPITALS:
            text = "no idea" if target.name == "bad" else CAPITALS[question]
        else:
            text = f"from {target.name}"
        return {
            "id": "a-1",
            "object": "chat.completion",
            "created": 1,
            "model": "arms",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
        }

    async def stream(
        self, request: GatewayRequest, target: TargetSpec
    ) -> AsyncIterator[dict[str, Any]]:  # pragma: no cover - nothing here streams
        raise NotImplementedError
        yield {}


class World:
    """Project ``shop`` (deployments ``good``, ``bad`` and the two-armed ``chat``), prompt
    ``qa`` v1-2, adapter ``support`` v1-2, and the live gateway."""

    def __init__(
        self, admin: genai.Client, project: GatewayProject, gw: LiveGateway, tmp: Path
    ) -> None:
        self.admin, self.project, self.gw, self.tmp = admin, project, gw, tmp
        data = tmp / "capitals.jsonl"
        data.write_text(
            "".join(json.dumps({"question": q, "reference": a}) + "\n" for q, a in CAPITALS.items())
        )
        self.data = data

    def suite(self, bound: float, name: str = "suite") -> Path:
        path = self.tmp / f"{name}.yaml"
        path.write_text(SUITE.format(data=self.data, bound=bound))
        return path

    def evaluate(
        self, target: str, *, bound: float = 0.3, project: GatewayProject | None = None
    ) -> str:
        """An eval run of ``target`` (0.3: all right passes, all wrong fails); its id."""
        who = project or self.project
        job = ev.run(
            self.admin,
            who.name,
            self.suite(bound),
            target=target,
            gateway=self.gw.v1,
            api_key=who.key,
        )
        return job.eval.id


@pytest.fixture
def world(
    platform: Callable[..., genai.Client],
    settings: genai.Settings,
    gateway_server: Callable[..., LiveGateway],
    tmp_path: Path,
) -> Iterator[World]:
    admin = platform()
    project = new_project(admin, P)
    project.deploy({"targets": [{"name": "good", "backend": "arms"}], "retries": 0}, name="good")
    project.deploy({"targets": [{"name": "bad", "backend": "arms"}], "retries": 0}, name="bad")
    project.deploy(TWO_ARMS, name="chat")
    admin.registry.prompts.register(P, "qa", template="Answer: {q}")
    admin.registry.prompts.register(P, "qa", template="Answer briefly: {q}")
    admin.registry.models.register(P, "base", source="org/base-model", license="mit")
    for _ in range(2):
        admin.registry.adapters.register(
            P, "support", base_model="base", rank=8, alpha=16, target_modules=["q_proj"]
        )
    gw = gateway_server(
        settings,
        stages=Stages(targets={"arms": Arms()}),
        options=GatewayOptions(ledger_interval_s=0.02),
        rng=random.Random(11),
    )
    yield World(admin, project, gw, tmp_path)


def _weights(world: World, name: str = "chat") -> dict[str, float]:
    spec = world.admin.registry.deployments.get(P, name).spec
    return {t["name"]: t["weight"] for t in spec["targets"]}


# ------------------------------------------------------------------ promote


def test_a_failing_gate_moves_nothing(world: World) -> None:
    failing = world.evaluate("bad")
    revisions = len(world.admin.registry.deployments.list(P, name="chat"))

    moves: list[dict[str, Any]] = [
        {"prompt": "qa@2", "label": "production"},
        {"adapter": "support@2", "alias": "production"},
        {"deployment": "chat", "weights": {"stable": 75, "canary": 25}},
    ]
    for move in moves:
        with pytest.raises(ev.PromotionRefused) as caught:
            ev.promote(world.admin, P, failing, **move)
        refused = caught.value
        assert isinstance(refused, PolicyViolation)
        assert refused.gate.outcome == "fail" and refused.exit_code == 1
        assert f"eval:{failing} did not pass its gate (fail)" in refused.message
        assert "exact_match min 0.3: fail" in refused.message

    registry = world.admin.registry
    assert registry.aliases.history(P, "prompt:qa") == []
    assert registry.aliases.history(P, "adapter:support") == []
    with pytest.raises(NotFoundError):
        registry.prompts.get(P, "qa@production")
    assert len(registry.deployments.list(P, name="chat")) == revisions
    assert _weights(world) == {"stable": 100, "canary": 0}
    assert world.admin.audit.list(P, action="alias.set") == []
    assert world.admin.audit.list(P, action="eval.promote") == []


def test_a_passing_gate_moves_the_label_and_the_alias_with_the_run_as_evidence(
    world: World,
) -> None:
    passing = world.evaluate("good")

    label = ev.promote(world.admin, P, f"eval:{passing}", prompt="qa@2", label="production")
    alias = ev.promote(world.admin, P, passing, adapter="support@1", alias="production")

    assert label.gate.outcome == "pass" and label.moved
    assert (label.subject, label.promoted, label.eval) == (
        "prompt:qa@production",
        "prompt:qa@2",
        f"eval:{passing}",
    )
    assert alias.promoted == "adapter:support@1"
    registry = world.admin.registry
    assert registry.prompts.get(P, "qa@production").version == 2
    assert registry.adapters.get(P, "support@production").version == 1
    (moved,) = registry.aliases.history(P, "prompt:qa")
    assert (moved.alias, moved.to_version, moved.evidence) == ("production", 2, f"eval:{passing}")
    assert registry.aliases.history(P, "adapter:support")[0].evidence == f"eval:{passing}"
    audited = world.admin.audit.list(P, action="alias.set")
    assert {(a.resource, a.details["evidence"]) for a in audited} == {
        ("prompt:qa@production", f"eval:{passing}"),
        ("adapter:support@production", f"eval:{passing}"),
    }
    # the run evaluated deployment `good`, not the prompt: said, so the CLI can warn
    assert not label.covered
    assert any(ref.startswith("deployment:good@") for ref in label.evaluated)
    # an alias moved without evidence keeps working, and says it has none
    plain = registry.aliases.set(P, "prompt:qa@1", "staging")
    assert plain.evidence is None
    assert registry.aliases.history(P, "prompt:qa", alias="staging")[0].evidence is None


def test_a_passing_gate_makes_a_revision_with_the_new_weights_and_a_lineage_edge(
    world: World,
) -> None:
    passing = world.evaluate("chat")  # stable answers every row: the arm at 100

    done = ev.promote(
        world.admin, P, passing, deployment="chat", weights={"canary": 25, "stable": 75}
    )

    assert done.revision is not None and done.revision.version == 2
    assert done.promoted == "deployment:chat@2" and done.covered  # chat@1 was evaluated
    assert done.revision.description.endswith(f"(evidence eval:{passing})")
    assert "traffic: weights canary=25, stable=75" in done.revision.description
    assert _weights(world) == {"stable": 75, "canary": 25}
    graph = world.admin.registry.lineage(P, f"eval:{passing}")
    assert "deployment:chat@2" in graph.descendants
    assert any(
        (e.parent, e.child, e.relation) == (f"eval:{passing}", "deployment:chat@2", "promoted")
        for e in graph.edges
    )
    (audited,) = world.admin.audit.list(P, action="eval.promote")
    assert (audited.resource, audited.details["evidence"]) == (
        "deployment:chat@2",
        f"eval:{passing}",
    )


def test_a_run_that_is_not_a_pass_for_other_reasons_is_refused_with_its_exit_code(
    world: World,
) -> None:
    # all six right: mean 1, CI [0.56, 1]; a bound of 0.9 is inside the interval
    unsure = world.evaluate("good", bound=0.9)
    with pytest.raises(ev.PromotionRefused) as caught:
        ev.promote(world.admin, P, unsure, prompt="qa@2", label="production")
    assert caught.value.exit_code == 2 and caught.value.gate.outcome == "inconclusive"
    # a bad option is refused before anything is read
    with pytest.raises(genai.errors.ValidationError, match="exactly one of"):
        ev.promote(world.admin, P, unsure, prompt="qa@2", label="x", adapter="support@1")
    with pytest.raises(genai.errors.ValidationError, match="needs its label"):
        ev.promote(world.admin, P, unsure, prompt="qa@2")
    with pytest.raises(genai.errors.ValidationError, match="no target named 'nope'"):
        ev.promote(world.admin, P, unsure, deployment="chat", weights={"nope": 1})
    assert world.admin.registry.aliases.history(P, "prompt:qa") == []


def test_one_project_cannot_promote_with_or_move_anything_of_another(world: World) -> None:
    other = new_project(world.admin, "other")
    other.deploy({"targets": [{"name": "good", "backend": "arms"}]}, name="good")
    world.admin.registry.prompts.register("other", "qa", template="Q: {q}")
    mine = world.evaluate("good")
    theirs = world.evaluate("good", project=other)

    def message(call: Callable[[], object]) -> str:
        with pytest.raises(NotFoundError) as caught:
            call()
        return caught.value.message

    # another project's run is not found, in the same words as a missing one
    missing = message(
        lambda: ev.promote(world.admin, "other", "0123456789ab", prompt="qa@1", label="production")
    )
    found = message(
        lambda: ev.promote(world.admin, "other", mine, prompt="qa@1", label="production")
    )
    assert found == missing.replace("0123456789ab", mine)
    # ... nor evidence for a move of the other project's own alias
    registry = world.admin.registry
    evidence = message(
        lambda: registry.aliases.set("other", "prompt:qa@1", "production", evidence=f"eval:{mine}")
    )
    no_such = message(
        lambda: registry.aliases.set(
            "other", "prompt:qa@1", "production", evidence="eval:0123456789ab"
        )
    )
    assert evidence == no_such.replace("0123456789ab", mine)
    # a run of the other project cannot target this project's deployment or prompt
    message(lambda: ev.promote(world.admin, "other", theirs, deployment="chat", weights={"a": 1}))
    message(lambda: ev.promote(world.admin, "other", theirs, prompt="nope@1", label="production"))
    # a key of the other project sees nothing of this one
    keyed = genai.connect(world.admin.settings, api_key=other.key, store=world.admin.store)
    message(lambda: ev.promote(keyed, P, mine, prompt="qa@2", label="production"))
    message(lambda: ev.load_run(keyed, P, mine))
    message(lambda: keyed.usage.feedback(P, "chat"))  # a canary's signal, read as them
    assert registry.aliases.history(P, "prompt:qa") == []
    assert registry.aliases.history("other", "prompt:qa") == []
    assert _weights(world) == {"stable": 100, "canary": 0}


# ------------------------------------------------------------------ canary


class Traffic:
    """What the canary's ``sleep`` does instead of waiting: ``n`` requests through the
    gateway, each scored through ``POST /v1/feedback`` by the arm that answered, then the
    ledger flushed and the injected clock moved on."""

    def __init__(self, world: World, score: Callable[[str, int], float], n: int = 24) -> None:
        self.world, self.score, self.n = world, score, n
        self.clock = ManualClock()
        self.seen: Counter[str] = Counter()
        self.sdk = openai.OpenAI(base_url=world.gw.v1, api_key=world.project.key, max_retries=0)
        self.http = httpx.Client(
            base_url=world.gw.v1, headers={"Authorization": f"Bearer {world.project.key}"}
        )

    def __call__(self, seconds: float) -> None:
        gateway = self.world.gw.gateway
        gateway.invalidate(self.world.project.id)  # the new revision's weights at once
        for _ in range(self.n):
            answer = self.sdk.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": "which arm?"}]
            )
            arm = (answer.choices[0].message.content or "").removeprefix("from ")
            self.seen[arm] += 1
            verdict = self.http.post(
                "/feedback",
                json={"response_id": answer.id, "score": self.score(arm, self.seen[arm])},
            )
            assert verdict.status_code == 200, verdict.text
        assert gateway.ledger.flush()
        self.clock.advance(seconds)

    def close(self) -> None:
        self.sdk.close()
        self.http.close()


@pytest.fixture
def traffic(world: World) -> Iterator[Callable[..., Traffic]]:
    made: list[Traffic] = []

    def make(score: Callable[[str, int], float]) -> Traffic:
        made.append(Traffic(world, score))
        return made[-1]

    yield make
    for one in made:
        one.close()


def _good(arm: str, k: int) -> float:
    return 0.9 if k % 2 else 0.8


def _regressed(arm: str, k: int) -> float:
    return (0.2 if k % 2 else 0.1) if arm == "canary" else _good(arm, k)


def _canary(world: World, drive: Traffic, **options: Any) -> ev.CanaryResult:
    return ev.canary(
        world.admin,
        P,
        "chat",
        canary="canary",
        stable="stable",
        min_requests=8,
        margin=0.2,
        poll_s=10.0,
        clock=drive.clock,
        sleep=drive,
        steps=(25, 50, 100),
        timeout_s=600.0,
        **options,
    )


def test_a_canary_that_regresses_rolls_back_by_itself(
    world: World, traffic: Callable[..., Traffic]
) -> None:
    drive = traffic(_regressed)

    result = _canary(world, drive)

    assert result.status == "rolled-back" and result.exit_code == 1
    (step,) = result.steps
    assert (step.percent, step.outcome) == (25, "regressed")
    assert step.canary_n >= 8 and step.stable_n >= 8
    assert step.comparison is not None and step.comparison.verdict == "worse"
    assert step.comparison.diff is not None and step.comparison.diff < -0.5
    assert result.reason.startswith("significant regression at 25%: feedback canary")
    assert _weights(world) == {"stable": 100, "canary": 0}
    revisions = world.admin.registry.deployments.list(P, name="chat")
    assert [r.version for r in revisions] == [3, 2, 1]
    assert revisions[1].description.endswith("(evidence canary step 1/3: canary 25%)")
    assert "canary rollback: significant regression" in revisions[0].description
    assert result.revision == "deployment:chat@3"
    audited = world.admin.audit.list(P, action="deployment.register")
    assert {a.resource for a in audited} >= {"deployment:chat@2", "deployment:chat@3"}


def test_a_canary_whose_feedback_holds_goes_to_all_the_traffic(
    world: World, traffic: Callable[..., Traffic]
) -> None:
    drive = traffic(_good)
    said: list[ev.CanaryStep] = []

    result = _canary(world, drive, on_step=said.append)

    assert result.status == "promoted" and result.exit_code == 0
    assert [(s.percent, s.outcome) for s in result.steps] == [
        (25, "held"),
        (50, "held"),
        (100, "promoted"),
    ]
    assert said == result.steps
    for step in result.steps[:2]:
        assert step.comparison is not None and step.comparison.verdict == "no-difference"
    assert _weights(world) == {"stable": 0, "canary": 100}
    assert result.revision == "deployment:chat@4"
    assert drive.seen["canary"] > 0 and drive.seen["stable"] > 0


def test_a_canary_nobody_scores_rolls_back_when_its_step_times_out(world: World) -> None:
    clock = ManualClock()

    result = ev.canary(
        world.admin,
        P,
        "chat",
        canary="canary",
        stable="stable",
        steps=(10, 100),
        min_requests=5,
        poll_s=30.0,
        timeout_s=120.0,
        clock=clock,
        sleep=clock.advance,
    )

    assert result.status == "rolled-back"
    assert result.steps[0].outcome == "inconclusive" and result.steps[0].comparison is None
    assert result.reason.startswith("too few scored answers after 120s at 10%")
    assert clock() >= 120.0
    assert _weights(world) == {"stable": 100, "canary": 0}


def test_a_canary_refuses_bad_steps_and_another_projects_deployment(world: World) -> None:
    with pytest.raises(genai.errors.ValidationError, match="the last one 100"):
        ev.canary(world.admin, P, "chat", canary="canary", stable="stable", steps=(5, 50))
    other = new_project(world.admin, "other")
    with pytest.raises(NotFoundError):
        ev.canary(world.admin, other.name, "chat", canary="canary", stable="stable")
    assert len(world.admin.registry.deployments.list(P, name="chat")) == 1


# ------------------------------------------------------------------ the CLI


@pytest.mark.sqlite_only
def test_genai_eval_promote_exits_with_the_gates_code(
    world: World, settings: genai.Settings
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENAI_")}
    env |= {
        "GENAI_HOME": str(settings.home),
        "GENAI_DATABASE_URL": settings.resolved_database_url,
        "GENAI_USER": "admin",
    }

    def genai_cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [GENAI, "eval", "promote", *args, "-p", P],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    failing, unsure, passing = (
        world.evaluate("bad"),
        world.evaluate("good", bound=0.9),
        world.evaluate("good"),
    )
    label = ("--prompt", "qa@2", "--label", "production")
    assert genai_cli(failing, *label).returncode == 1
    assert genai_cli(unsure, *label).returncode == 2
    missing = genai_cli("0123456789ab", *label)
    assert missing.returncode == 3 and "not found" in missing.stderr
    assert genai_cli(passing, "--prompt", "qa@2").returncode == 3  # no --label
    assert world.admin.registry.aliases.history(P, "prompt:qa") == []

    moved = genai_cli(passing, *label)
    assert moved.returncode == 0, moved.stderr
    assert "prompt:qa@production → prompt:qa@2" in moved.stdout
    assert "did not evaluate prompt:qa@2" in moved.stderr  # the warning
    traffic = genai_cli(
        passing, "--deployment", "chat", "--weights", "stable=75,canary=25", "--json"
    )
    assert traffic.returncode == 0, traffic.stderr
    assert json.loads(traffic.stdout)["promoted"] == "deployment:chat@2"
    assert world.admin.registry.aliases.history(P, "prompt:qa")[0].evidence == f"eval:{passing}"
