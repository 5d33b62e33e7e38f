"""What the Hub tests share: two projects (shop, bank) with keys, deployments, prompts and
data whose texts carry XSS payloads, a gateway serving ``/api`` and ``/hub``, and a signed-in
HTTP client.

    world = make_hub_world(platform, settings, gateway_server)
    with world.signed_in(world.owner) as http:
        http.get("/hub/p/shop/prompts")
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from apps.gateway import mount_platform
from genai.tenancy import UsageEvent
from prompts import PromptHub, PromptTemplate

#: Texts that run script if a page ever inserts them as markup.
XSS = (
    '<script>alert("xss-script")</script>',
    '<img src=x onerror=alert("xss-img")>',
    '"><svg onload=alert("xss-svg")>',
    "</textarea><script>alert('xss-textarea')</script>",
)
#: What the shop's fake model answers: words, then every payload (streamed piece by piece).
REPLY = "Hello from the fake model, streamed word by word. " + " ".join(XSS)
#: Every page of a project, signed in (``{p}`` the project).
PAGES = (
    "/hub/p/{p}",
    "/hub/p/{p}/deployments",
    "/hub/p/{p}/chat/chat",
    "/hub/p/{p}/prompts",
    "/hub/p/{p}/prompts/greet",
    "/hub/p/{p}/prompts/greet/diff?a=1&b=2",
    "/hub/p/{p}/prompts/greet/playground",
    "/hub/p/{p}/registry",
    "/hub/p/{p}/registry/datasets/faq",
    "/hub/p/{p}/registry/lineage?ref=dataset:faq",
    "/hub/p/{p}/apps",
    "/hub/p/{p}/usage",
    "/hub/p/{p}/evals",
    "/hub/p/{p}/agents",
    "/hub/p/{p}/knowledge",
    "/hub/p/{p}/audit",
)
#: Every form or fetch target of a project.
POSTS = (
    "/hub/p/{p}/chat/chat",
    "/hub/p/{p}/prompts/greet/label",
    "/hub/p/{p}/feedback",
    "/hub/p/{p}/prompts/greet/playground",
    "/hub/p/{p}/apps",
)


def post(http: httpx.Client, path: str, token: str | None) -> httpx.Response:
    """What the page would send to ``path``: the chat's JSON fetch or a form (``token``,
    the CSRF token; None sends none)."""
    if "/chat/" in path or path.endswith("/feedback"):
        headers = {"accept": "application/json"}
        if token is not None:
            headers["x-csrf-token"] = token
        body: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}]}
        if path.endswith("/feedback"):
            body = {"request_id": "0" * 24, "rating": "up"}
        return http.post(path, json=body, headers=headers)
    form = {"version": "1", "label": "staging"}
    if token is not None:
        form["csrf"] = token
    return http.post(path, data=form)


@dataclass
class HubWorld:
    url: str  # http://127.0.0.1:PORT
    admin: Any  # genai.Client of the platform admin (owner of both projects)
    owner: str  # shop, role owner
    viewer: str  # shop, role viewer
    outsider: str  # bank, role owner
    settings: Any

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, follow_redirects=False)

    @contextlib.contextmanager
    def signed_in(self, key: str) -> Iterator[httpx.Client]:
        """A client with a session of ``key`` (signed in through the form)."""
        with self.client() as http:
            reply = http.post("/hub/signin", data={"key": key, "csrf": signin_token(http)})
            assert reply.status_code == 303, reply.text
            yield http


def signin_token(http: httpx.Client) -> str:
    """The sign-in form's CSRF token (its cookie is now in ``http``)."""
    form = http.get("/hub/signin")
    assert form.status_code == 200, form.text
    found = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert found, form.text
    return found.group(1)


def csrf_of(html: str) -> str:
    """A signed-in page's CSRF token (its meta tag)."""
    found = re.search(r'<meta name="csrf-token" content="([^"]+)"', html)
    assert found, html
    return found.group(1)


def make_hub_world(
    platform: Callable[..., Any],
    settings: Any,
    gateway_server: Callable[..., Any],
    **gateway: Any,
) -> HubWorld:
    """The two projects on a gateway started with ``gateway`` (e.g. ``stages=...``)."""
    admin = platform()
    admin.projects.create("shop", description="The shop's assistants " + XSS[0])
    admin.projects.create("bank", description="The bank's")
    owner = admin.keys.create("shop", role="owner", name="ops").secret
    viewer = admin.keys.create("shop", role="viewer", name="dash").secret
    outsider = admin.keys.create("bank", role="owner", name="ops").secret
    fake = {"targets": [{"name": "m", "backend": "fake", "options": {"default": REPLY}}]}
    for project in ("shop", "bank"):
        admin.registry.deployments.create(project, "chat", spec=fake, description=XSS[1])
        hub = PromptHub(admin, project)
        for n, system in enumerate(("You help " + XSS[2], "You help kindly " + XSS[3])):
            template = PromptTemplate(
                messages=[("system", system), ("user", "{{ question }}")],
                variables={"question": "str"},
            )
            hub.push("greet", template, message=f"v{n + 1} {XSS[0]}", label="production")
    for project in ("shop", "bank"):  # rows and a column name are untrusted text too
        rows = [{"question": XSS[1], "answer": "a", XSS[3]: 1}, {"question": "q2", "answer": None}]
        admin.registry.datasets.register(project, "faq", rows, description=XSS[2])
    admin.usage.record("shop", UsageEvent(model="chat", prompt_tokens=5, completion_tokens=7))
    live = gateway_server(settings, admin=mount_platform, **gateway)
    return HubWorld(live.url, admin, owner, viewer, outsider, settings)


#: The rows of the eval suite ``capitals``: questions (one carries a payload) and references.
EVAL_ROWS = [
    {"id": f"q{i}", "question": f"capital {i}? " + (XSS[3] if i == 0 else ""), "reference": ref}
    for i, ref in enumerate(["Paris"] * 6 + ["Rome"] * 2)
]
#: What the candidate deployment answers to every row (the baseline answers "Paris").
CANDIDATE_REPLY = "Rome " + XSS[1]


@dataclass(frozen=True)
class EvalRuns:
    baseline: str  # shop's run of qa-a (answers "Paris": 6 of 8 rows right)
    candidate: str  # shop's run of qa-b (answers CANDIDATE_REPLY: none right)
    theirs: str  # bank's run of qa-a


def add_eval_runs(world: HubWorld, folder: Path) -> EvalRuns:
    """Runs of the suite ``capitals`` (EVAL_ROWS; exact_match and token_f1, one repeat)
    made by ``eval.run`` through the world's gateway, as ``genai eval run`` makes them."""
    import json

    import eval as ev

    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "capitals.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in EVAL_ROWS), encoding="utf-8")
    suite = folder / "suite.yaml"
    suite.write_text(
        "name: capitals\ndataset: capitals.jsonl\nrepeats: 1\nconcurrency: 2\n"
        "max_retries: 0\nmetrics: [exact_match, token_f1]\n",
        encoding="utf-8",
    )
    made = (
        ("shop", "qa-a", world.owner, "Paris"),
        ("shop", "qa-b", world.owner, CANDIDATE_REPLY),
        ("bank", "qa-a", world.outsider, "Paris"),
    )
    for project, target, _, reply in made:  # all first: the gateway caches its deployments
        spec = {"targets": [{"name": "m", "backend": "fake", "options": {"default": reply}}]}
        world.admin.registry.deployments.create(project, target, spec=spec)
    ids = {}
    for project, target, key, _ in made:
        job = ev.run(
            world.admin, project, suite, target=target, gateway=world.url + "/v1", api_key=key
        )
        assert job.eval.status == "finished", job.eval
        ids[(project, target)] = job.eval.id
    return EvalRuns(ids[("shop", "qa-a")], ids[("shop", "qa-b")], ids[("bank", "qa-a")])


@contextlib.contextmanager
def playground_world(
    platform: Callable[..., Any], settings: Any, gateway_server: Callable[..., Any]
) -> Iterator[tuple[HubWorld, Any]]:
    """The hub world on a gateway with the prompt stage, and shop's deployment ``echo`` of
    an upstream that answers with the messages it got: the world and the upstream
    (``_hub_upstream.EchoUpstream``, its ``bodies`` the requests)."""
    from _hub_upstream import EchoUpstream

    from apps._prompts import PromptStage
    from genai.gateway import Stages
    from genai.store import Store
    from genai.testing import running_server

    store = Store(settings.resolved_database_url)
    stages = Stages(request=[PromptStage(settings, store, ttl_s=0.0)])
    world = make_hub_world(platform, settings, gateway_server, stages=stages)
    echo = EchoUpstream()
    try:
        with running_server(echo.app()) as base:
            spec = {"targets": [{"name": "up", "url": base + "/v1", "model": "echo"}]}
            world.admin.registry.deployments.create("shop", "echo", spec=spec)
            yield world, echo
    finally:
        store.dispose()


DOCS = {
    "refunds.md": "# Refunds\n\nRefunds reach your card within five business days after we "
    "approve them.\n",
    "support.md": "# Support desk\n\nThe support desk opens at 9 am and closes at 6 pm, "
    "Monday to Friday.\n",
}


def make_docs_world(
    platform: Callable[..., Any],
    settings: Any,
    gateway_server: Callable[..., Any],
    embedder: Any,
    folder: Path,
) -> HubWorld:
    """Project shop with knowledge base ``docs`` (DOCS) and its bot ``docs-bot`` (the
    extractive LLM: it quotes the sentences it cites), on a gateway that hosts it."""
    from apps._knowledge import DEFAULT_PROMPT, KnowledgeBot
    from apps._prompts import PromptStage
    from apps.deployments import apply_spec
    from genai.gateway import Stages
    from genai.store import Store
    from rag import KnowledgeBases

    admin = platform()
    admin.projects.create("shop")
    owner = admin.keys.create("shop", role="owner", name="ops").secret
    viewer = admin.keys.create("shop", role="viewer", name="dash").secret
    admin.projects.create("bank")
    outsider = admin.keys.create("bank", role="owner", name="ops").secret
    kbs = KnowledgeBases(admin, embedder=embedder)
    kbs.create("shop", "docs", description="The shop's help pages")
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in DOCS.items():
        (folder / name).write_text(text, encoding="utf-8")
    kbs.get("shop", "docs").ingest([folder])
    PromptHub(admin, "shop").push("qa", DEFAULT_PROMPT, label="production")
    bot_spec = {"targets": [{"name": "bot", "backend": "knowledge-bot", "options": {"kb": "docs"}}]}
    apply_spec(admin, "shop", "docs-bot", bot_spec)
    store = Store(settings.resolved_database_url, pool_size=5)
    prompts = PromptStage(settings, store, ttl_s=0.0)
    bot = KnowledgeBot(settings, store, prompts=prompts, knowledge_bases=kbs)
    stages = Stages(request=[prompts], targets={bot.name: bot})
    live = gateway_server(settings, stages=stages, embedder=embedder, admin=mount_platform)
    return HubWorld(live.url, admin, owner, viewer, outsider, settings)


def make_agent_world(
    platform: Callable[..., Any], settings: Any, gateway_server: Callable[..., Any]
) -> tuple[HubWorld, str, str]:
    """Project shop with a hosted agent ``helper`` whose ``weather`` tool waits for a
    person, and one run of it waiting: the world, a maintainer key and the run's id. The
    world's ``viewer`` is a developer here (may run agents, may not decide)."""
    import json

    from apps._agent_target import AgentPolicy, AgentTarget
    from apps.gateway import bind_agents
    from genai.gateway import Stages
    from genai.store import Store

    admin = platform()
    admin.projects.create("shop")
    admin.projects.create("bank")
    owner = admin.keys.create("shop", role="owner", name="ops").secret
    developer = admin.keys.create("shop", role="developer", name="dev").secret
    maintainer = admin.keys.create("shop", role="maintainer", name="lead").secret
    outsider = admin.keys.create("bank", role="owner", name="ops").secret
    call = {"id": "c1", "function": {"name": "weather", "arguments": json.dumps({"city": "Rome"})}}
    call2 = {**call, "id": "c2", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}
    replies = [{"tool_calls": [call]}, "Sunny in Rome.", {"tool_calls": [call2]}]
    model = {"targets": [{"name": "m", "backend": "fake", "options": {"replies": replies}}]}
    admin.registry.deployments.create("shop", "model", spec=model)
    tool = {"python": "_agent_tools:weather", "requires_approval": True}
    agent = {"name": "helper", "model": "model", "instructions": "Use the tools.", "tools": [tool]}
    hosted = {"targets": [{"name": "a", "backend": "agent", "options": {"agent": agent}}]}
    admin.registry.deployments.create("shop", "helper", spec=hosted)
    store = Store(settings.resolved_database_url)
    policy = AgentPolicy(python_modules=("_agent_tools",))
    stages = Stages(targets={"agent": AgentTarget(settings, store, policy=policy)})
    live = gateway_server(settings, stages=stages, admin=mount_platform)
    bind_agents(stages, live.app)
    answer = httpx.post(
        live.url + "/v1/chat/completions",
        json={"model": "helper", "messages": [{"role": "user", "content": "Rome?"}]},
        headers={"authorization": f"Bearer {developer}"},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    run = answer.json()["agent_run"]
    assert run["status"] == "awaiting_approval", run
    world = HubWorld(live.url, admin, owner, developer, outsider, settings)
    return world, maintainer, str(run["id"])
