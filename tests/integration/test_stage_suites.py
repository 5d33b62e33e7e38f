"""The platform's gateway stages against the shipped stage suites (genai.testing): the
semantic cache stage, the knowledge bot, the DLP stages and the prompt stage, each on a
real SQLite store (the knowledge bot on a real knowledge base with the bundled embedding
model and the extractive LLM; the cache with a bag-of-words fake embedder; DLP with
pattern recognizers only)."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

import genai
from apps._agent_target import AGENT_BACKEND, AgentPolicy, AgentTarget
from apps._cache import GatewayCache
from apps._dlp import DlpRequestStage, DlpResponseStage
from apps._knowledge import BOT_BACKEND, DEFAULT_PROMPT, KnowledgeBot
from apps._prompts import PromptStage
from cache import SemanticCache
from genai.dlp import Dlp, DlpKeys, Policy
from genai.gateway import CacheStage, GatewayRequest, StageNotes, TargetSpec
from genai.store import schema as t
from genai.testing import (
    CacheStageSuite,
    FakeEmbedder,
    RequestStageSuite,
    ResponseStageSuite,
    StageRequests,
    TargetStageSuite,
)
from genai.vectors import InMemoryVectorStore
from prompts import PromptHub, PromptTemplate
from rag import KnowledgeBases

# SQLite here: the stores these stages use have their own suites on PostgreSQL.
pytestmark = pytest.mark.sqlite_only

Projects = tuple[tuple[int, str], tuple[int, str]]
KEYS = DlpKeys(b"the stage suites' key, 32 bytes!")
POLICY = Policy(default_action="pseudonymise")
EMAIL = "alice@example.com"


@dataclass
class World:
    admin: genai.Client
    settings: genai.Settings
    projects: Projects


@pytest.fixture
def world(platform: Callable[..., genai.Client], settings: genai.Settings) -> World:
    """Projects ``support`` and ``other-team`` on an initialised platform."""
    admin = platform()
    found: list[tuple[int, str]] = []
    for name in ("support", "other-team"):
        admin.projects.create(name)
        with admin.store.session() as s:
            found.append((s.scalar(select(t.Project.id).where(t.Project.name == name)) or 0, name))
    return World(admin, settings, (found[0], found[1]))


# ------------------------------------------------------------------ the cache stage


class TestGatewayCache(CacheStageSuite):
    @pytest.fixture
    def projects(self, world: World) -> Projects:
        return world.projects

    @pytest.fixture
    def make_request(self, projects: Projects) -> StageRequests:
        """Both projects turned the cache on (it is off unless a project does)."""
        return StageRequests(projects=projects, options={"cache": {"enabled": True}})

    @pytest.fixture
    async def cache(self, world: World) -> AsyncIterator[GatewayCache]:
        store = world.admin.store
        semantic = SemanticCache(InMemoryVectorStore(), FakeEmbedder(words=True), store=store)
        stage = GatewayCache(semantic, store=store, revision_ttl_s=0.0)
        yield stage
        await stage.drain()
        stage.close()

    async def settle(self, cache: CacheStage) -> None:
        assert isinstance(cache, GatewayCache)
        await cache.drain()  # stores run in the background


# ------------------------------------------------------------------ the knowledge bot

DOCS = {
    "refunds.md": """
        # Refunds
        Refunds reach your card within five business days after we approve them.
        A refund for a gift card is paid as store credit.
    """,
    "support.md": """
        # Support desk
        The support desk opens at 9 am and closes at 6 pm, Monday to Friday.
    """,
}


class TestKnowledgeBot(TargetStageSuite):
    @pytest.fixture
    def projects(self, world: World) -> Projects:
        return world.projects

    @pytest.fixture
    async def target(
        self, world: World, embedder: Any, tmp_path: Path
    ) -> AsyncIterator[KnowledgeBot]:
        admin = world.admin
        kbs = KnowledgeBases(admin, embedder=embedder)
        kbs.create("support", "docs")
        folder = tmp_path / "docs"
        folder.mkdir()
        for name, text in DOCS.items():
            (folder / name).write_text(textwrap.dedent(text).strip() + "\n", encoding="utf-8")
        kbs.get("support", "docs").ingest([folder])
        PromptHub(admin, "support").push("qa", DEFAULT_PROMPT, label="production")
        prompts = PromptStage(world.settings, admin.store, ttl_s=0.0)
        bot = KnowledgeBot(world.settings, admin.store, prompts=prompts, knowledge_bases=kbs)
        yield bot
        await bot.close()

    @pytest.fixture
    def target_spec(self) -> TargetSpec:
        return TargetSpec(name="bot", backend=BOT_BACKEND, options={"kb": "docs"})

    @pytest.fixture
    def question(self) -> str:
        return "How long do refunds take?"

    async def test_prepare_notes_the_versions_the_answer_draws_on(
        self, target: KnowledgeBot, target_spec: TargetSpec, chat_request: GatewayRequest
    ) -> None:
        await target.prepare(chat_request, target_spec)
        assert (chat_request.notes.kb_version, chat_request.prompt_version) == ("docs@1", "qa@1")


# ------------------------------------------------------------------ DLP


def _dlp_requests(projects: Projects) -> StageRequests:
    return StageRequests(projects=projects, options={"dlp": POLICY.to_json()})


@pytest.fixture
def dlp_request_stage() -> Iterator[DlpRequestStage]:
    stage = DlpRequestStage(Dlp(keys=KEYS, ner="none"))  # pattern recognizers, a memory vault
    yield stage
    stage.close()


class TestDlpRequestStage(RequestStageSuite):
    @pytest.fixture
    def stage(self, dlp_request_stage: DlpRequestStage) -> DlpRequestStage:
        return dlp_request_stage

    @pytest.fixture
    def make_request(self, projects: Projects) -> StageRequests:
        return _dlp_requests(projects)


class TestDlpResponseStage(ResponseStageSuite):
    """Restoring the pseudonym of the request's e-mail address, in whole answers and in
    streams cut anywhere."""

    @pytest.fixture
    def request_stage(self, dlp_request_stage: DlpRequestStage) -> DlpRequestStage:
        return dlp_request_stage

    @pytest.fixture
    def stage(self, dlp_request_stage: DlpRequestStage) -> DlpResponseStage:
        return DlpResponseStage(dlp_request_stage.restorers)

    @pytest.fixture
    def make_request(self, projects: Projects) -> StageRequests:
        return _dlp_requests(projects)

    @pytest.fixture
    def question(self) -> str:
        return f"Please tell {EMAIL} how long refunds take."

    @pytest.fixture
    def rewrites(self) -> Sequence[tuple[str, str]]:
        return [
            ("I wrote to <EMAIL_ADDRESS_1> today.", f"I wrote to {EMAIL} today."),
            ("<EMAIL_ADDRESS_1>", EMAIL),
            ("email_address_1 <b>knows</b>", f"{EMAIL} <b>knows</b>"),
        ]

    async def test_the_model_sees_the_pseudonym_the_rewrites_restore(
        self, seen_request: GatewayRequest
    ) -> None:
        sent = seen_request.body["messages"][-1]["content"]
        assert sent == "Please tell <EMAIL_ADDRESS_1> how long refunds take."


# ------------------------------------------------------------------ the prompt stage


class TestPromptStage(RequestStageSuite):
    """Requests that name no prompt pass through."""

    @pytest.fixture
    def stage(self, world: World) -> PromptStage:
        return PromptStage(world.settings, world.admin.store, ttl_s=0.0)

    @pytest.fixture
    def projects(self, world: World) -> Projects:
        return world.projects


@dataclass(frozen=True)
class PromptRequests(StageRequests):
    """Chat requests that ask their question through the registered prompt ``qa``."""

    def __call__(
        self,
        question: str = "How long do refunds take?",
        *,
        endpoint: str = "chat",
        other_project: bool = False,
        deployment: str | None = None,
        body: dict[str, Any] | None = None,
        session_id: str | None = None,
        request_id: str | None = None,
        notes: StageNotes | None = None,
    ) -> GatewayRequest:
        if endpoint == "chat" and body is None:
            model = deployment or self.deployment
            body = {"model": model, "prompt": "qa@production", "variables": {"question": question}}
        return super().__call__(
            question,
            endpoint=endpoint,
            other_project=other_project,
            deployment=deployment,
            body=body,
            session_id=session_id,
            request_id=request_id,
            notes=notes,
        )


class TestPromptStageRenderingARegisteredPrompt(TestPromptStage):
    """Requests that name the project's ``qa@production`` prompt are rendered into messages."""

    @pytest.fixture
    def make_request(self, world: World, projects: Projects) -> StageRequests:
        template = PromptTemplate(
            messages=[("system", "Answer briefly."), ("user", "Question: {{ question }}")],
            variables={"question": "str"},
        )
        for _, name in projects:
            PromptHub(world.admin, name).push("qa", template, label="production")
        return PromptRequests(projects=projects)


# ------------------------------------------------------------------ hosted agents


class TestAgentTarget(TargetStageSuite):
    """The agent target keeps the target protocol: its runs' model calls go through a real
    gateway app (in process) to a scripted model of the project, with a developer key."""

    @pytest.fixture
    def projects(self, world: World) -> Projects:
        return world.projects

    @pytest.fixture
    async def target(self, world: World) -> AsyncIterator[AgentTarget]:
        from genai.gateway import Stages, create_gateway, create_gateway_app

        spec = {"targets": [{"name": "m", "backend": "fake", "options": {"default": "An answer."}}]}
        world.admin.registry.deployments.create("support", "bot", spec=spec)
        stage = AgentTarget(world.settings, world.admin.store, policy=AgentPolicy())
        stages = Stages(targets={AgentTarget.name: stage})
        gateway = create_gateway(world.settings, stages=stages, store=world.admin.store)
        stage.bind(create_gateway_app(gateway, settings=world.settings))
        await gateway.start()
        yield stage
        await gateway.close()

    @pytest.fixture
    def target_spec(self) -> TargetSpec:
        agent = {"name": "helper", "model": "bot", "instructions": "Answer briefly."}
        return TargetSpec(name="agent", backend=AGENT_BACKEND, options={"agent": agent})

    @pytest.fixture
    def chat_request(self, world: World, make_request: StageRequests) -> GatewayRequest:
        request = make_request("What is the answer?")
        request.credential = world.admin.keys.create("support", role="developer").secret
        return request
