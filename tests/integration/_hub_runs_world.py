"""What the Hub's run, lineage and agent-tree tests share: a fine-tuning run with its
per-step metrics and the lineage built on it (dataset → run → adapter → deployment → eval
run), and an agent run whose trace nests a sub-agent's steps, both in a project of a
:class:`_hub_world.HubWorld`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from _hub_world import XSS, HubWorld
from sqlalchemy import select

from genai.store import schema as t

#: A metric name no API accepts, written straight to the store: shown as text all the same.
HOSTILE_METRIC = '<script>alert("metric")</script>'


@dataclass(frozen=True)
class Training:
    run: str  # the run's id
    adapter: str  # support@N
    deployment: str  # tuned@N
    eval: str  # the eval run's id


def add_training_run(world: HubWorld, project: str) -> Training:
    """In ``project``: a base model, a run on dataset ``faq`` logging loss and lr at steps
    1-20 and eval_loss every 5 steps, the adapter it produced, a deployment serving it and
    an eval run of that deployment; the run's params and a metric carry payloads."""
    reg = world.admin.registry
    reg.models.register(project, "base", source="org/base-model", license="mit")
    params = {"learning_rate": 2e-4, "note": XSS[0]}
    with reg.runs.start(project, "tune", params=params, datasets=["faq"], base_model="base") as run:
        for step in range(1, 21):
            metrics = {"loss": 2.0 / step + 0.1, "lr": 2e-4 * (1 - step / 20)}
            if step % 5 == 0:
                metrics["eval_loss"] = 2.2 / step + 0.2
            run.log(metrics, step=step)
    with world.admin.store.session() as s:  # a name the API refuses, as if written elsewhere
        pk = s.scalar(select(t.Run.id).where(t.Run.uid == run.id))
        s.add(t.RunMetric(run_id=pk, key=HOSTILE_METRIC, step=1, value=1.0))
    adapter = reg.adapters.register(
        project,
        "support",
        base_model="base",
        rank=8,
        alpha=16,
        target_modules=["q_proj"],
        run=run.id,
    )
    spec = {"targets": [{"name": "m", "backend": "fake", "options": {"default": "ok"}}]}
    deployment = reg.deployments.create(
        project, "tuned", adapter=f"support@{adapter.version}", spec=spec
    )
    evaluated = reg.evals.record(
        project,
        "qa",
        metrics={"exact_match": {"mean": 0.5, "low": 0.3, "high": 0.7}},
        inputs=[f"deployment:tuned@{deployment.version}"],
    )
    return Training(
        run.id, f"support@{adapter.version}", f"tuned@{deployment.version}", evaluated.id
    )


def add_agent_run(world: HubWorld, project: str) -> str:
    """An agent run of ``project`` as the engine stores it: the agent ``helper`` calls its
    model, a tool, then asks the sub-agent ``researcher`` (whose model and tool calls
    follow), then answers; a tool's result carries a payload. Its id."""
    from agents._records import RunRecords, StepInfo

    with world.admin.store.session() as s:
        project_id = s.scalar(select(t.Project.id).where(t.Project.name == project))
    records = RunRecords(world.admin.store, project_id=project_id, project=project)
    run_id = "run-tree-1"
    records.create(
        run_id=run_id,
        agent="helper",
        definition={"name": "helper"},
        input=[{"role": "user", "content": "Weather in Rome?"}],
        session=None,
        created_by="admin",
    )
    steps: list[tuple[str, str, str, dict[str, Any]]] = [
        ("model", "model", "helper", {"tokens": 12}),
        ("tool", "weather", "helper", {"arguments": '{"city": "Rome"}', "result": XSS[1]}),
        ("agent", "ask_researcher", "helper", {"arguments": '{"request": "history"}'}),
        ("model", "model", "researcher", {"tokens": 8}),
        (
            "tool",
            "search",
            "researcher",
            {"arguments": '{"q": "Rome"}', "result": "Founded 753 BC"},
        ),
        ("model", "model", "helper", {"tokens": 20}),
    ]
    trace = [
        StepInfo(i, kind, name, agent, "ok", detail, 5.0)
        for i, (kind, name, agent, detail) in enumerate(steps)
    ]
    records.finish(run_id, trace, status="completed", steps=len(trace), output="Sunny.")
    return run_id
