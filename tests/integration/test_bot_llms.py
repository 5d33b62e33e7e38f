"""The knowledge bot's LLM clients are bounded: one per project and key, at most
``max_clients`` kept, replaced ones closed after a grace period (a clock is injected)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apps._bot_llms import BotLLM, BotLLMs
from genai import Settings
from genai.gateway import GatewayRequest
from genai.tenancy import Principal
from genai.testing import FakeOpenAIServer, running_server


@pytest.fixture
def upstream() -> Iterator[str]:
    fake = FakeOpenAIServer()
    with running_server(fake.app) as url:
        yield url + "/v1"


def request(project_id: int) -> GatewayRequest:
    principal = Principal(id=1, name="bot", kind="service", is_admin=False, grants={})
    return GatewayRequest(
        request_id=f"r{project_id}",
        endpoint="chat",
        principal=principal,
        project_id=project_id,
        project=f"p{project_id}",
        project_options={},
        body={},
        deployment="bot",
    )


def test_clients_are_kept_per_project_bounded_and_closed_after_their_grace(
    upstream: str, tmp_path: Path
) -> None:
    now = [0.0]
    llms = BotLLMs(
        Settings(home=tmp_path),
        None,  # type: ignore[arg-type]  # no store: bots without an API key never read it
        max_clients=2,
        retire_after_s=60,
        clock=lambda: now[0],
    )
    options = BotLLM(url=upstream, model="fake-base")

    async def run() -> dict[str, Any]:
        first = await llms.get(options, request(1), None)
        again = await llms.get(options, request(1), None)
        second = await llms.get(options, request(2), None)
        await llms.get(options, request(3), None)  # the least recently used (project 1) goes
        seen = {"same": first is again, "distinct": first is not second, "size": llms.size}
        seen["first_open"] = first._client is not None  # type: ignore[attr-defined]
        now[0] = 61.0  # its grace is over: closed by the next change of clients
        await llms.get(options, request(4), None)
        seen["first_closed"] = first._client is None  # type: ignore[attr-defined]
        seen["size_after"] = llms.size
        await llms.close()
        seen["all_closed"] = second._client is None  # type: ignore[attr-defined]
        return seen

    seen = asyncio.run(run())
    assert seen["same"] and seen["distinct"]
    assert seen["size"] == 3  # two kept, one retired (a request may still be using it)
    assert seen["first_open"] and seen["first_closed"]
    assert seen["size_after"] == 3  # two kept, project 2's client retired, project 1's closed
    assert seen["all_closed"]


def test_an_in_process_llm_is_built_only_as_the_operator_allows(tmp_path: Path) -> None:
    """A bot's ``llm.backend`` runs in the gateway: the backends and model directories the
    operator allows (GENAI_INPROCESS_BACKENDS, GENAI_MODEL_ROOTS), checked before anything
    is loaded, whatever the spec that was stored."""
    from genai.errors import Forbidden

    llms = BotLLMs(Settings(home=tmp_path), None)  # type: ignore[arg-type]
    secret = tmp_path / "not-a-model"
    secret.mkdir()

    async def build(options: BotLLM) -> Any:
        return await llms.get(options, request(1), None)

    with pytest.raises(Forbidden, match="GENAI_INPROCESS_BACKENDS"):
        asyncio.run(build(BotLLM(backend="transformers", options={"model": str(secret)})))
    with pytest.raises(Forbidden, match="GENAI_MODEL_ROOTS"):  # extractive's own model
        asyncio.run(build(BotLLM(backend="extractive", options={"embedding_model": str(secret)})))
    assert llms.size == 0
