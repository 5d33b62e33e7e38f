"""A deployment may run a backend inside the gateway only as the operator allows
(GENAI_INPROCESS_BACKENDS, GENAI_MODEL_ROOTS): refused when it is applied, and again by
the gateway before it would load anything, with words that never say whether a path
exists; allowed, it answers."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from _gateway_harness import GatewayProject, LiveGateway

import genai
from apps.deployments import apply_spec
from genai.errors import Forbidden
from genai.gateway import GatewayOptions, InProcessPolicy

pytestmark = pytest.mark.sqlite_only

OPTIONS = GatewayOptions(ledger_interval_s=0.02)
CHAT = {"model": "chat", "messages": [{"role": "user", "content": "Say hello"}]}


def local(model: Path | str) -> dict[str, Any]:
    return {
        "targets": [{"name": "local", "backend": "transformers", "options": {"model": str(model)}}]
    }


def ask(gw: LiveGateway, key: str) -> httpx.Response:
    with httpx.Client(base_url=gw.v1, headers={"authorization": f"Bearer {key}"}, timeout=60) as c:
        return c.post("/chat/completions", json={**CHAT, "max_tokens": 4})


def test_applying_a_spec_with_a_backend_the_operator_did_not_allow_is_refused(
    project: GatewayProject, tiny: Any
) -> None:
    with pytest.raises(Forbidden, match="GENAI_INPROCESS_BACKENDS"):
        apply_spec(project.admin, project.name, "chat", local(tiny.model))
    bot = {"kb": "docs", "llm": {"backend": "transformers", "options": {"model": "/etc"}}}
    spec = {"targets": [{"name": "bot", "backend": "knowledge-bot", "options": bot}]}
    with pytest.raises(Forbidden, match=r"target 'bot' \(its LLM\) runs the backend"):
        apply_spec(project.admin, project.name, "bot", spec)


@pytest.mark.parametrize("where", ["/etc", "/no/such/dir"])
def test_the_gateway_refuses_a_stored_spec_it_does_not_allow_the_same_way_for_any_path(
    where: str,
    project: GatewayProject,
    settings: genai.Settings,
    gateway_server: Callable[..., LiveGateway],
) -> None:
    """A spec stored another way (an older version, a direct registry write) is checked
    by the gateway before it builds the backend: a 403, never an error that tells whether
    the path exists."""
    project.deploy(local(where))
    policy = InProcessPolicy.of(["extractive", "transformers"], [settings.home / "models"])
    gw = gateway_server(settings, options=dataclasses.replace(OPTIONS, inprocess=policy))
    answer = ask(gw, project.key)
    assert answer.status_code == 403
    message = answer.json()["error"]["message"]
    assert message == (
        "target 'local': options.model names files outside the directories this gateway "
        "loads models from (GENAI_MODEL_ROOTS). Put the model under one of them, register "
        "it, or ask the operator to add its directory"
    )


def test_a_model_under_an_allowed_root_answers(
    project: GatewayProject,
    settings: genai.Settings,
    gateway_server: Callable[..., LiveGateway],
    tiny: Any,
) -> None:
    project.deploy(local(tiny.model))
    policy = InProcessPolicy.of(["transformers"], [Path(tiny.model).parent])
    gw = gateway_server(settings, options=dataclasses.replace(OPTIONS, inprocess=policy))
    answer = ask(gw, project.key)
    assert answer.status_code == 200, answer.text
    assert answer.json()["usage"]["completion_tokens"] > 0
