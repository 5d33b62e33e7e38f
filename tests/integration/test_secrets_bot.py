"""The knowledge bot's LLM and upstream keys, on SQLite and PostgreSQL: a real gateway with
the admin API, a real knowledge base per project, and a fake OpenAI-compatible LLM server
that records the key of every request.

The bot's LLM names a secret of the bot's own project (``llm.api_key_secret``); each
project's requests carry its own key (never a client of another project's), a rotated
secret applies at once, and a variable the operator did not allow is refused at apply time
and per request, before anything reaches the LLM.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from apps._knowledge import DEFAULT_PROMPT, KnowledgeBot
from apps._prompts import PromptStage
from apps.admin import mount_admin
from apps.deployments import apply_spec
from genai.errors import ValidationError
from genai.gateway import GatewayOptions, Stages
from genai.store import Store
from genai.tenancy import secret_sealer
from genai.testing import FakeOpenAIServer, running_server
from prompts import PromptHub
from rag import KnowledgeBases

pytestmark = pytest.mark.slow  # a knowledge base per project, with the embedding model

OPERATOR = "operator-secret-token-0123456789"
QUESTION = "How long do refunds take?"
DOC = "# Refunds\nRefunds reach your card within five business days after we approve them.\n"


@pytest.fixture
def llm() -> Iterator[FakeOpenAIServer]:
    fake = FakeOpenAIServer(base_model="m", max_model_len=4096, reply="Five days [1].")
    with running_server(fake.app) as base:
        fake.url = base + "/v1"
        yield fake


@dataclass
class World:
    url: str
    admin: Any
    keys: dict[str, str]  # project → a developer key; "<project>:maintainer" → a maintainer's

    def ask(self, project: str, model: str = "docs-bot", stream: bool = False) -> httpx.Response:
        body = {
            "model": model,
            "messages": [{"role": "user", "content": QUESTION}],
            "stream": stream,
        }
        headers = {"authorization": f"Bearer {self.keys[project]}"}
        return httpx.post(f"{self.url}/v1/chat/completions", json=body, headers=headers, timeout=60)


def bot_spec(url: str, **key: str) -> dict[str, Any]:
    """A knowledge bot over ``docs`` whose LLM is ``url`` with ``key`` (its key's source)."""
    options = {"kb": "docs", "llm": {"url": url, "model": "m", **key}}
    return {"targets": [{"name": "bot", "backend": "knowledge-bot", "options": options}]}


@pytest.fixture
def world(
    platform: Callable[..., Any],
    settings: Any,
    gateway_server: Any,
    embedder: Any,
    tmp_path: Path,
    llm: FakeOpenAIServer,
) -> World:
    admin = platform()
    kbs = KnowledgeBases(admin, embedder=embedder)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "refunds.md").write_text(textwrap.dedent(DOC), encoding="utf-8")
    keys = {}
    for project in ("shop", "bank"):
        admin.projects.create(project)
        keys[project] = admin.keys.create(project, role="developer").secret
        keys[f"{project}:maintainer"] = admin.keys.create(project, role="maintainer").secret
        kbs.create(project, "docs")
        kbs.get(project, "docs").ingest([docs])
        PromptHub(admin, project).push("qa", DEFAULT_PROMPT, label="production")
        admin.secrets.set(project, "llm-key", f"sk-{project}-1")
        apply_spec(admin, project, "docs-bot", bot_spec(llm.url, api_key_secret="llm-key"))
    store = Store(settings.resolved_database_url, pool_size=10)
    prompts = PromptStage(settings, store, ttl_s=0.0)
    bot = KnowledgeBot(settings, store, prompts=prompts, knowledge_bases=kbs)
    served = settings.model_copy(update={"admin_token": SecretStr(OPERATOR)})
    options = GatewayOptions(ledger_interval_s=0.02, secrets=secret_sealer(served))
    live = gateway_server(
        served,
        stages=Stages(request=[prompts], targets={bot.name: bot}),
        options=options,
        admin=mount_admin,
    )
    return World(live.url, admin, keys)


def keys_seen(llm: FakeOpenAIServer) -> set[str]:
    return {r.headers.get("authorization", "") for r in llm.requests}


def test_the_bots_llm_sends_its_own_projects_secret_and_follows_a_rotation(
    world: World, llm: FakeOpenAIServer
) -> None:
    for project in ("shop", "bank"):
        llm.requests.clear()
        answer = world.ask(project)
        assert answer.status_code == 200, answer.text
        assert answer.json()["choices"][0]["message"]["content"] == "Five days [1]."
        assert keys_seen(llm) == {f"Bearer sk-{project}-1"}  # never the other project's client

    put = httpx.put(
        f"{world.url}/api/projects/shop/secrets/llm-key",
        json={"value": "sk-shop-2"},
        headers={"authorization": f"Bearer {world.keys['shop:maintainer']}"},
        timeout=30,
    )
    assert put.status_code == 200, put.text
    llm.requests.clear()
    assert world.ask("shop").status_code == 200
    assert world.ask("shop", stream=True).status_code == 200
    assert keys_seen(llm) == {"Bearer sk-shop-2"}
    llm.requests.clear()
    assert world.ask("bank").status_code == 200
    assert keys_seen(llm) == {"Bearer sk-bank-1"}


def test_the_bots_llm_cannot_read_a_variable_the_operator_did_not_allow(
    world: World, llm: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GENAI_ADMIN_TOKEN", OPERATOR)
    spec = bot_spec(llm.url, api_key_env="GENAI_ADMIN_TOKEN")
    with pytest.raises(ValidationError) as refused:
        apply_spec(world.admin, "bank", "leak", spec)
    assert "target 'bot' (its LLM) reads its key from the environment variable" in str(
        refused.value
    )
    assert "`api_key_secret: genai-admin-token`" in str(refused.value)

    world.admin.registry.deployments.create("bank", "leak", spec=spec)  # stored unchecked
    llm.requests.clear()
    for stream in (False, True):
        answer = world.ask("bank", model="leak", stream=stream)
        assert answer.status_code == 502, answer.text
        assert "the knowledge bot's LLM reads its key" in answer.json()["error"]["message"]
        assert OPERATOR not in answer.text
    assert llm.requests == []


def test_the_bots_llm_with_a_missing_secret_is_refused_before_it_is_called(
    world: World, llm: FakeOpenAIServer
) -> None:
    spec = bot_spec(llm.url, api_key_secret="nope")
    with pytest.raises(ValidationError, match="`genai secret set nope --project bank`"):
        apply_spec(world.admin, "bank", "other", spec)
    world.admin.registry.deployments.create("bank", "other", spec=spec)
    llm.requests.clear()
    answer = world.ask("bank", model="other")
    assert answer.status_code == 502
    assert "'nope', which is not set in project 'bank'" in answer.json()["error"]["message"]
    assert llm.requests == []
