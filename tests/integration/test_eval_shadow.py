"""Shadow traffic, judged, on SQLite and PostgreSQL: requests through a real gateway (the
openai SDK) to deployments with a shadow target, then ``eval.shadow`` turns the recorded
pairs into two eval runs (primary, shadow) over the same requests and compares them.

Nothing is asked again upstream (the fakes' counts); only the judge deployment is called,
through the gateway (its ledger rows). A shadow that says the same as the primary scores
as the primary; one that drifts scores lower. Without prompt logging the pairs are skipped
with the reason; another project reads none of it.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
from _clocks import wait_until
from _gateway_harness import GENAI, GatewayProject, LiveGateway, new_project

import eval as ev
import genai
from genai.errors import NotFoundError, UsageError
from genai.gateway import GatewayOptions
from genai.testing import FakeOpenAIServer, running_server

P = "shop"
ANSWER = "Paris is the capital of France"
DRIFT = "Bananas are yellow and grow in bunches"
VERDICT = '{"score": 4, "winner": "tie", "reason": "both fine"}'  # llm_judge and pairwise
QUESTIONS = ["capital of France?", "France's capital?", "where is the French capital?"]


@dataclass
class World:
    admin: genai.Client
    project: GatewayProject
    other: GatewayProject
    gw: LiveGateway
    primary: FakeOpenAIServer
    twin: FakeOpenAIServer  # a shadow answering as the primary does
    drift: FakeOpenAIServer  # a shadow answering something else
    judge: FakeOpenAIServer

    def ask(self, deployment: str, questions: list[str] = QUESTIONS) -> list[str]:
        """Each question through the gateway; the request ids. Returns once every shadow
        row is written (the gateway's shadow tasks done, its ledger flushed)."""
        client = openai.OpenAI(base_url=self.gw.v1, api_key=self.project.key, max_retries=0)
        ids = []
        for q in questions:
            raw = client.chat.completions.with_raw_response.create(
                model=deployment, messages=[{"role": "user", "content": q}]
            )
            assert raw.parse().choices[0].message.content == ANSWER
            ids.append(raw.headers["x-request-id"])
        assert wait_until(lambda: not self.gw.gateway.shadows_in_flight)
        assert self.gw.gateway.ledger.flush()
        return ids

    def shadow(self, deployment: str = "chat", **kwargs: Any) -> ev.ShadowJob:
        return ev.shadow(
            self.admin, P, deployment, gateway=self.gw.v1, api_key=self.project.key, **kwargs
        )

    def upstream_calls(self) -> tuple[int, int, int]:
        return self.primary.calls(), self.twin.calls(), self.drift.calls()


@pytest.fixture
def fakes() -> Iterator[Callable[..., FakeOpenAIServer]]:
    from contextlib import ExitStack

    with ExitStack() as stack:

        def start(reply: str, **kwargs: Any) -> FakeOpenAIServer:
            server = FakeOpenAIServer(reply=reply, **kwargs)
            server.url = stack.enter_context(running_server(server.app)) + "/v1"
            return server

        yield start


def _target(name: str, upstream: FakeOpenAIServer, **extra: Any) -> dict[str, Any]:
    return {"name": name, "url": upstream.url, "model": "fake-base", **extra}


def _shadowed(primary: FakeOpenAIServer, shadow: FakeOpenAIServer) -> dict[str, Any]:
    price = {"input_per_1m": 1000.0, "output_per_1m": 2000.0}
    return {
        "targets": [_target("primary", primary, price=price)],
        "shadow": {"target": _target("candidate", shadow, price=price), "sample": 1.0},
    }


@pytest.fixture
def world(
    platform: Callable[..., genai.Client],
    settings: genai.Settings,
    gateway_server: Callable[..., LiveGateway],
    fakes: Callable[..., FakeOpenAIServer],
) -> World:
    admin = platform()
    project, other = new_project(admin, P), new_project(admin, "other")
    primary, twin, drift = fakes(ANSWER), fakes(ANSWER), fakes(DRIFT)
    judge = fakes(VERDICT, max_model_len=100_000)
    project.deploy(_shadowed(primary, drift), name="chat")
    project.deploy(_shadowed(primary, twin), name="twin")
    project.deploy({"targets": [_target("judge", judge)]}, name="judge")
    other.deploy({"targets": [_target("primary", primary)]}, name="solo")
    admin.projects.set_option(P, "prompt_logging", True)
    gw = gateway_server(settings, options=GatewayOptions(ledger_interval_s=0.02))
    return World(admin, project, other, gw, primary, twin, drift, judge)


# ------------------------------------------------------------------ the gateway keeps it


def test_the_gateway_keeps_the_question_with_the_pair_and_the_api_reads_it(world: World) -> None:
    ids = world.ask("chat")

    rows = world.admin.usage.shadow_results(P, "chat")
    # in the order they were recorded (shadows answer in the background, in any order)
    asked = dict(zip(ids, QUESTIONS, strict=True))
    assert sorted(r.request_id for r in rows) == sorted(ids)
    for row in rows:
        question = asked[row.request_id]
        assert (row.status, row.primary_target, row.shadow_target) == ("ok", "primary", "candidate")
        assert json.loads(row.prompt_text) == {"messages": [{"role": "user", "content": question}]}
        assert (row.primary_text, row.shadow_text) == (ANSWER, DRIFT)
        # the caller's side from the usage ledger, the shadow's from its own row
        assert row.primary_completion_tokens == len(ANSWER.split())
        assert row.primary_prompt_tokens is not None and row.primary_cost_usd is not None
        assert row.shadow_tokens == row.primary_prompt_tokens + len(DRIFT.split())
    newest = world.admin.usage.shadow_results(P, "chat", limit=2)
    assert newest == rows[1:]  # the newest two, still oldest first
    assert world.admin.usage.shadow_results(P, "twin") == []
    recent = world.admin.usage.shadow_results(P, "chat", since=rows[-1].ts)
    assert rows[-1] in recent and all(r.ts >= rows[-1].ts for r in recent)


# ------------------------------------------------------------------ eval.shadow


def test_shadow_pairs_become_two_compared_runs_without_asking_upstream_again(
    world: World,
) -> None:
    ids = world.ask("chat")
    world.ask("twin")
    before = world.upstream_calls()

    drifting = world.shadow("chat")
    faithful = world.shadow("twin")

    assert world.upstream_calls() == before  # the answers are the recorded ones
    assert world.judge.calls() == 0  # and no metric asked a model
    assert (drifting.pairs, drifting.skipped) == (3, {})
    for job in (drifting, faithful):
        assert job.primary.eval.status == job.shadow.eval.status == "finished"
        assert [r.answer.output for r in job.primary.results] == [ANSWER] * 3
    assert {r.row.id for r in drifting.shadow.results} == set(ids)
    assert [r.answer.output for r in drifting.shadow.results] == [DRIFT] * 3
    assert drifting.primary.summary.target == "chat:primary"
    assert drifting.shadow.summary.target == "chat:candidate"

    def similarity(job: ev.ShadowJob, side: str) -> float:
        mean = getattr(job, side).summary.metrics["embedding_similarity"].estimate.mean
        assert mean is not None
        return float(mean)

    # the primary is its own reference; a faithful shadow scores as it does, a drift less
    assert similarity(drifting, "primary") == pytest.approx(1.0, abs=1e-4)
    assert similarity(faithful, "shadow") == pytest.approx(1.0, abs=1e-4)
    assert similarity(drifting, "shadow") < similarity(faithful, "shadow") - 0.3
    (compared,) = [c for c in drifting.comparisons if c.metric == "embedding_similarity"]
    assert compared.diff is not None and compared.diff < -0.3
    assert {c.metric for c in drifting.comparisons} >= {"cost", "tokens", "latency"}
    tokens = drifting.shadow.summary.metrics["tokens"].estimate.mean
    assert tokens == pytest.approx(len(DRIFT.split()))  # the shadow's completion tokens

    # lineage: both runs evaluated the deployment revision, the suite and the dataset
    for run in (drifting.primary, drifting.shadow):
        graph = world.admin.registry.lineage(P, run.eval.ref)
        assert {"deployment:chat@1", drifting.suite, drifting.dataset} <= set(graph.ancestors)
    assert drifting.dataset.startswith("dataset:shadow-chat@")
    # a stored pair reads back and compares like any two runs (`genai eval report A B`)
    summary, _ = ev.load_run(world.admin, P, drifting.shadow.eval.id)
    assert summary.metrics["embedding_similarity"].per_row == (
        drifting.shadow.summary.metrics["embedding_similarity"].per_row
    )
    again, base = ev.compare_with(world.admin, P, summary, drifting.primary.eval.id)
    assert base == drifting.primary.eval.id and len(again) == len(drifting.comparisons)
    with pytest.raises(Exception, match="cannot be resumed"):
        ev.resume(
            world.admin, P, drifting.shadow.eval.id, gateway=world.gw.v1, api_key=world.project.key
        )


def test_a_judge_scores_both_runs_and_the_shadow_pairwise_through_the_gateway(
    world: World,
) -> None:
    world.ask("chat")
    before = world.upstream_calls()
    judged_before = len(_ledger(world, "judge"))

    job = world.shadow("chat", judge="judge", metrics=())

    assert world.upstream_calls() == before
    # llm_judge: one call per row on each run; pairwise: two per row (answers swapped)
    assert world.judge.calls() == 3 + 3 + 2 * 3
    assert len(_ledger(world, "judge")) - judged_before == world.judge.calls()  # billed
    assert set(job.primary.summary.metrics) >= {"llm_judge"}
    assert "pairwise_judge" not in job.primary.summary.metrics
    pairwise = job.shadow.summary.metrics["pairwise_judge"].estimate
    assert pairwise.mean == pytest.approx(0.5)  # a tie each way
    assert job.shadow.eval.config["baseline"] == job.primary.eval.id
    assert any(c.metric == "llm_judge" for c in job.comparisons)


def _ledger(world: World, model: str) -> list[Any]:
    world.gw.gateway.ledger.flush()
    return [r for r in world.project.rows() if r.model == model]


def test_pairs_recorded_without_prompt_logging_are_skipped_with_the_reason(
    world: World, settings: genai.Settings, gateway_server: Callable[..., LiveGateway]
) -> None:
    # a gateway started with the option off (each gateway reads it once, then caches it)
    world.admin.projects.set_option(P, "prompt_logging", False)
    world.gw = gateway_server(settings, options=GatewayOptions(ledger_interval_s=0.02))
    world.ask("chat")

    with pytest.raises(UsageError, match="prompt_logging was off: 3"):
        world.shadow("chat")
    assert {r.prompt_text for r in world.admin.usage.shadow_results(P, "chat")} == {""}

    world.admin.projects.set_option(P, "prompt_logging", True)
    world.gw = gateway_server(settings, options=GatewayOptions(ledger_interval_s=0.02))
    kept = world.ask("chat", QUESTIONS[:2])
    job = world.shadow("chat")
    assert (job.pairs, job.skipped) == (2, {"prompt_logging was off": 3})
    assert {r.row.id for r in job.shadow.results} == set(kept)
    assert job.shadow.eval.config["skipped"] == {"prompt_logging was off": 3}


# ------------------------------------------------------------------ tenancy


def test_another_project_reads_no_shadow_pairs_and_cannot_judge_them(
    world: World, platform: Callable[..., genai.Client]
) -> None:
    world.ask("chat")
    outsider = platform(api_key=world.other.key)

    def refusal(project: str, deployment: str = "chat") -> str:
        with pytest.raises(NotFoundError) as caught:
            outsider.usage.shadow_results(project, deployment)
        return caught.value.message

    assert refusal(P) == refusal("no-such-project").replace("no-such-project", P)
    assert outsider.usage.shadow_results("other", "chat") == []  # its own: nothing there

    def judged(project: str, deployment: str = "chat") -> str:
        with pytest.raises(NotFoundError) as caught:
            ev.shadow(outsider, project, deployment, gateway=world.gw.v1, api_key=world.other.key)
        return caught.value.message

    assert judged(P) == judged("no-such-project").replace("no-such-project", P)
    assert judged("other") == judged("other", "missing").replace("missing", "chat")
    # nothing was registered for the outsider, nothing in the project
    assert world.admin.registry.evals.list("other") == []
    assert world.admin.registry.evals.list(P) == []


# ------------------------------------------------------------------ the CLI


@pytest.mark.sqlite_only
def test_genai_eval_shadow_prints_both_runs_and_the_comparison(
    world: World, settings: genai.Settings, tmp_path: Path
) -> None:
    world.ask("chat")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENAI_")}
    env |= {
        "GENAI_HOME": str(settings.home),
        "GENAI_DATABASE_URL": settings.resolved_database_url,
        "GENAI_USER": "admin",
        "GENAI_API_KEY": world.project.key,
        "GENAI_GATEWAY_URL": world.gw.v1,
    }

    def genai_cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [GENAI, "eval", *args, "-p", P], env=env, capture_output=True, text=True, timeout=300
        )

    done = genai_cli("shadow", "chat", "--json", "--report", str(tmp_path / "shadow.html"))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert (out["pairs"], out["skipped"]) == (3, {})
    assert out["primary"]["target"] == "chat:primary"
    assert any(c["metric"] == "embedding_similarity" for c in out["comparisons"])
    assert "<html" in (tmp_path / "shadow.html").read_text().lower()

    table = genai_cli("shadow", "chat", "--metric", "token_f1", "--limit", "2")
    assert table.returncode == 0, table.stderr
    assert "token_f1" in table.stdout and "paired" in table.stdout
    report = genai_cli(
        "report", out["primary"]["id"], out["shadow"]["id"], "-o", str(tmp_path / "r.html")
    )
    assert report.returncode == 0, report.stderr

    missing = genai_cli("shadow", "nothing-here")
    assert missing.returncode != 0 and "not found" in missing.stderr
