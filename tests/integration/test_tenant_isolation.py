"""A principal of project A can neither list, read, change nor probe anything of project B,
through any Client API: every such call fails with NotFoundError worded exactly as for a
project (or entry) that does not exist at all."""

from collections.abc import Callable, Mapping
from types import SimpleNamespace

import pytest

import genai
from genai.errors import Forbidden, NotFoundError
from genai.tenancy import UsageEvent

A, B = "proj-a", "proj-b"
GHOST_RUN, GHOST_EVAL, GHOST_KEY = "0123456789ab", "ba9876543210", "gk_zzzzzzzzzz"
PRINCIPALS = ["viewer", "developer", "maintainer", "owner", "key"]


@pytest.fixture
def world(platform):
    """Two projects: B full of things, owned by bob; A with members of every role."""
    admin = platform()
    admin.projects.create(A)
    admin.projects.create(B)
    admin.projects.add_member(B, "bob", role="owner")
    bob = platform("bob")
    reg = bob.registry
    reg.models.register(B, "shared", source="org/b-model", license="mit")
    reg.aliases.set(B, "model:shared@1", "production")
    reg.datasets.register(B, "b-data", [{"q": "secret question", "a": "secret answer"}])
    reg.adapters.register(
        B, "b-lora", base_model="model:shared", rank=8, alpha=16, target_modules=["q_proj"]
    )
    reg.prompts.register(B, "b-prompt", template="Hello {name}")
    reg.deployments.create(B, "b-chat", model="model:shared@1", adapter="adapter:b-lora@1")
    run = reg.runs.start(B, "b-train", datasets=["b-data"], code="")
    run.log({"loss": 0.5}, step=1)
    ev = reg.evals.record(B, "b-suite", metrics={"acc": 0.9}, inputs=["deployment:b-chat@1"])
    bob.projects.add_member(B, "b-bot", role="developer", service=True)
    b_key = bob.keys.create(B, role="developer", name="b-key")
    bob.usage.record(B, UsageEvent(model="b-secret-model", prompt_tokens=1000, cost_usd=9.0))
    bob.quotas.set(B, requests_per_minute=77)

    admin.registry.models.register(A, "shared", source="org/a-model", license="apache-2.0")
    for role in ("viewer", "developer", "maintainer", "owner"):
        admin.projects.add_member(A, f"a-{role}", role=role)
    admin.usage.record(A, UsageEvent(model="a-model", prompt_tokens=7))
    a_key = platform("a-owner").keys.create(A, role="owner", name="a-key")
    return SimpleNamespace(
        admin=admin, bob=bob, platform=platform, run=run.id, eval=ev.id, key=b_key, a_key=a_key
    )


def principal_of_a(world: SimpleNamespace, who: str) -> genai.Client:
    platform: Callable[..., genai.Client] = world.platform
    if who == "key":
        return platform(api_key=world.a_key.secret)
    return platform(f"a-{who}")


def probes_of_b(c: genai.Client, w: SimpleNamespace) -> dict[str, Callable[[], object]]:
    """Every Client API, aimed at project B (with B's real names and ids)."""
    p, reg, run, ev = B, c.registry, w.run, w.eval
    return {
        "projects.get": lambda: c.projects.get(p),
        "projects.delete": lambda: c.projects.delete(p),
        "projects.members": lambda: c.projects.members(p),
        "projects.add_member": lambda: c.projects.add_member(p, "a-viewer", role="viewer"),
        "projects.add_member service": lambda: c.projects.add_member(
            p, "spy", role="viewer", service=True
        ),
        "projects.remove_member": lambda: c.projects.remove_member(p, "bob"),
        "projects.remove_member service": lambda: c.projects.remove_member(
            p, "b-bot", service=True
        ),
        "projects.set_option": lambda: c.projects.set_option(p, "prompt_logging", True),
        "keys.create": lambda: c.keys.create(p, role="viewer"),
        "keys.create service": lambda: c.keys.create(p, role="viewer", service_account="b-bot"),
        "keys.list": lambda: c.keys.list(p, include_revoked=True),
        "keys.revoke prefix": lambda: c.keys.revoke(p, w.key.prefix),
        "keys.revoke id": lambda: c.keys.revoke(p, str(w.key.id)),
        "quotas.get": lambda: c.quotas.get(p),
        "quotas.set": lambda: c.quotas.set(p, requests_per_minute=1),
        "quotas.acquire": lambda: c.quotas.acquire(p),
        "usage.record": lambda: c.usage.record(p, UsageEvent(model="x", prompt_tokens=1)),
        "usage.report": lambda: c.usage.report(p),
        "audit.list": lambda: c.audit.list(p),
        "models.get": lambda: reg.models.get(p, "shared"),
        "models.get alias": lambda: reg.models.get(p, "shared@production"),
        "models.list": lambda: reg.models.list(p),
        "models.register": lambda: reg.models.register(p, "m", source="org/m", license="mit"),
        "datasets.get": lambda: reg.datasets.get(p, "b-data"),
        "datasets.list": lambda: reg.datasets.list(p),
        "datasets.rows": lambda: reg.datasets.rows(p, "b-data"),
        "datasets.register": lambda: reg.datasets.register(p, "d", [{"x": 1}]),
        "adapters.get": lambda: reg.adapters.get(p, "b-lora"),
        "adapters.list": lambda: reg.adapters.list(p),
        "adapters.register": lambda: reg.adapters.register(
            p, "l", base_model="model:shared", rank=4, alpha=8, target_modules=["v_proj"]
        ),
        "prompts.get": lambda: reg.prompts.get(p, "b-prompt"),
        "prompts.list": lambda: reg.prompts.list(p),
        "prompts.register": lambda: reg.prompts.register(p, "b-prompt", template="Bye"),
        "deployments.get": lambda: reg.deployments.get(p, "b-chat"),
        "deployments.list": lambda: reg.deployments.list(p),
        "deployments.create": lambda: reg.deployments.create(p, "b-chat", model="model:shared"),
        "runs.start": lambda: reg.runs.start(p, "r", code=""),
        "runs.get": lambda: reg.runs.get(p, run),
        "runs.list": lambda: reg.runs.list(p),
        "runs.log": lambda: reg.runs.log(p, run, {"loss": 0.1}, step=2),
        "runs.finish": lambda: reg.runs.finish(p, run),
        "runs.metrics": lambda: reg.runs.metrics(p, run),
        "evals.record": lambda: reg.evals.record(p, "s", metrics={"acc": 1.0}),
        "evals.get": lambda: reg.evals.get(p, ev),
        "evals.list": lambda: reg.evals.list(p),
        "aliases.set": lambda: reg.aliases.set(p, "model:shared@1", "staging"),
        "aliases.set protected": lambda: reg.aliases.set(p, "model:shared@1", "production"),
        "aliases.delete": lambda: reg.aliases.delete(p, "model:shared", "production"),
        "aliases.history": lambda: reg.aliases.history(p, "model:shared"),
        "lineage model": lambda: reg.lineage(p, "model:shared"),
        "lineage run": lambda: reg.lineage(p, f"run:{run}"),
    }


def not_found_messages(probes: Mapping[str, Callable[[], object]]) -> dict[str, str]:
    messages: dict[str, str] = {}
    wrong: list[str] = []
    for name, call in probes.items():
        try:
            call()
        except NotFoundError as error:
            messages[name] = str(error)
        except Exception as error:
            wrong.append(f"{name}: {type(error).__name__}: {error}")
        else:
            wrong.append(f"{name}: succeeded")
    assert not wrong, "\n".join(wrong)
    return messages


@pytest.mark.parametrize("who", PRINCIPALS)
def test_nothing_of_b_is_reachable_and_b_is_indistinguishable_from_no_project(world, who):
    client = principal_of_a(world, who)
    b_events = len(world.admin.audit.list(B, limit=10_000))
    with_b = not_found_messages(probes_of_b(client, world))
    assert len(world.admin.audit.list(B, limit=10_000)) == b_events  # nothing of B changed
    assert world.bob.quotas.get(B).limits.requests_per_minute == 77
    assert [k.prefix for k in world.bob.keys.list(B)] == [world.key.prefix]

    world.admin.projects.delete(B)
    without_b = not_found_messages(probes_of_b(client, world))
    assert with_b == without_b  # same error, same words: no existence leak
    assert with_b["projects.get"] == f"project {B!r} not found"


@pytest.mark.parametrize("who", PRINCIPALS)
def test_lists_and_reports_of_a_principal_of_a_hold_nothing_of_b(world, who):
    client = principal_of_a(world, who)
    assert [p.name for p in client.projects.list()] == [A]
    report = client.usage.report()  # every project the caller may read usage of
    assert {row.project for row in report.rows} == {A}
    assert "b-secret-model" not in {row.model for row in report.rows}
    assert report.total.requests == 1
    assert report.total.prompt_tokens == 7
    assert report.total.cost_usd == 0
    with pytest.raises(Forbidden):  # the whole audit log is for platform admins
        client.audit.list()


def miss(call: Callable[[str], object], real: str, ghost: str) -> tuple[str, str]:
    """The NotFoundError message for a name of B's, and for a made-up one, inside A."""
    messages = []
    for value in (real, ghost):
        with pytest.raises(NotFoundError) as info:
            call(value)
        messages.append(str(info.value))
    return messages[0].replace(real, ghost), messages[1]


@pytest.mark.parametrize("who", ["owner", "key"])
def test_names_and_ids_of_b_mean_nothing_inside_a(world, who):
    c = principal_of_a(world, who)
    reg = c.registry
    cases = [
        (lambda v: reg.runs.get(A, v), world.run, GHOST_RUN),
        (lambda v: reg.runs.metrics(A, v), world.run, GHOST_RUN),
        (lambda v: reg.runs.log(A, v, {"loss": 0.0}, step=5), world.run, GHOST_RUN),
        (lambda v: reg.runs.finish(A, v), world.run, GHOST_RUN),
        (lambda v: reg.evals.get(A, v), world.eval, GHOST_EVAL),
        (lambda v: reg.lineage(A, f"run:{v}"), world.run, GHOST_RUN),
        (lambda v: reg.evals.record(A, "s", metrics={}, inputs=[f"run:{v}"]), world.run, GHOST_RUN),
        (lambda v: reg.adapters.get(A, v), "b-lora", "ghost-lora"),
        (lambda v: reg.datasets.get(A, v), "b-data", "ghost-data"),
        (lambda v: reg.prompts.get(A, v), "b-prompt", "ghost-prompt"),
        (lambda v: reg.deployments.get(A, v), "b-chat", "ghost-chat"),
        (lambda v: reg.deployments.create(A, "c", adapter=f"adapter:{v}"), "b-lora", "ghost-lora"),
        (lambda v: reg.runs.start(A, "r", datasets=[v], code=""), "b-data", "ghost-data"),
        (lambda v: reg.models.get(A, f"shared@{v}"), "production", "ghostalias"),
        (lambda v: c.keys.revoke(A, v), world.key.prefix, GHOST_KEY),
        (lambda v: c.keys.create(A, role="viewer", service_account=v), "b-bot", "ghost-bot"),
        (lambda v: c.projects.remove_member(A, v, service=True), "b-bot", "ghost-bot"),
        (lambda v: c.projects.remove_member(A, v), "bob", "ghost-user"),
    ]
    for call, real, ghost in cases:
        leaked, expected = miss(call, real, ghost)
        assert leaked == expected
    # B's key, whole or by id, names no key of A
    with pytest.raises(NotFoundError, match="not found in project 'proj-a'"):
        c.keys.revoke(A, world.key.secret)
    a_ids = {k.id for k in c.keys.list(A, include_revoked=True)}
    assert world.key.id not in a_ids
    with pytest.raises(NotFoundError):
        c.keys.revoke(A, str(world.key.id))
    assert [k.prefix for k in world.bob.keys.list(B)] == [world.key.prefix]  # still active


def test_same_name_resolves_to_the_callers_project_only(world):
    c = principal_of_a(world, "owner")
    reg = c.registry
    assert reg.models.get(A, "shared").source == "org/a-model"
    assert [m.source for m in reg.models.list(A)] == ["org/a-model"]
    assert world.bob.registry.models.get(B, "shared").source == "org/b-model"

    deployment = reg.deployments.create(A, "chat", model="model:shared")
    assert deployment.model == "model:shared@1"
    graph = reg.lineage(A, "model:shared")
    assert graph.descendants == ["deployment:chat@1"]  # not B's adapter or deployment
    assert reg.aliases.history(A, "model:shared") == []  # B moved 'production', not A
    reg.aliases.set(A, "model:shared@1", "production")
    assert reg.models.get(A, "shared@production").source == "org/a-model"
    assert [h.actor for h in world.bob.registry.aliases.history(B, "model:shared")] == ["user:bob"]
    # A's lineage graph of the run in B is unreachable; B's own graph is untouched
    b_graph = world.bob.registry.lineage(B, "model:shared")
    assert "deployment:chat@1" not in b_graph.descendants
    assert set(b_graph.descendants) >= {"adapter:b-lora@1", "deployment:b-chat@1"}


def test_a_service_account_or_key_of_b_gains_nothing_in_a(world):
    bot_key = world.bob.keys.create(B, role="developer", service_account="b-bot")
    for secret in (bot_key.secret, world.key.secret):
        b_client = world.platform(api_key=secret)
        assert [p.name for p in b_client.projects.list()] == [B]
        with pytest.raises(NotFoundError, match=f"^project {A!r} not found$"):
            b_client.registry.models.get(A, "shared")
        with pytest.raises(NotFoundError):
            b_client.keys.create(A, role="viewer")
