"""Schemathesis against the gateway's own ``/openapi.json``: every operation of ``/v1`` and
``/api`` is called with bodies and parameters generated from the document (valid ones and
ones that break it), on a real gateway over HTTP, with a fixed seed and a small budget.

No answer may be a 5xx; every answer must be documented (status and content type) and
match its schema; and what the document forbids must be refused (4xx). The examples are
derandomized, so a failure here fails the same way on the next run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import hypothesis
import pytest
import schemathesis
from _admin_world import OPERATOR
from pydantic import SecretStr
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from apps.admin import mount_admin
from genai.testing import FakeOpenAIServer, running_server

pytestmark = [pytest.mark.slow, pytest.mark.sqlite_only]

#: Examples per operation and generation mode (valid, invalid), derandomized.
EXAMPLES = int(os.environ.get("GENAI_FUZZ_EXAMPLES", "25"))  # more, to explore locally
SEED = 20250131
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
EMBEDDER = "all-MiniLM-L6-v2"


@dataclass
class FuzzWorld:
    url: str
    caller: str  # a key of project bank: the /v1 calls' (no//{tmp_path / 'genai.db'}"


@pytest.fixture
def upstream() -> Iterator[str]:
    with running_server(FakeOpenAIServer(base_model="tiny", max_model_len=1_000_000).app) as url:
        yield url + "/v1"


@pytest.fixture
def fuzz_world(
    platform: Callable[..., Any],
    settings: Any,
    gateway_server: Any,
    upstream: str,
    embedder: Any,
) -> FuzzWorld:
    """Projects shop (what /api cases change) and bank (whose key makes the /v1 calls),
    each with deployment ``chat`` on the fake upstream; the bundled embedder on /v1."""
    admin = platform()
    for project in ("shop", "bank"):
        admin.projects.create(project)
        spec = {"targets": [{"name": "stable", "url": upstream, "model": "tiny"}]}
        admin.registry.deployments.create(project, "chat", spec=spec)
    caller = admin.keys.create("bank", role="owner", name="fuzz").secret
    with_token = settings.model_copy(update={"admin_token": SecretStr(OPERATOR)})
    live = gateway_server(with_token, admin=mount_admin, embedder=embedder)
    return FuzzWorld(live.url, caller)


def test_every_operation_answers_as_documented(fuzz_world: FuzzWorld, subtests: Any) -> None:
    """Each operation, with valid and with invalid data, in a subtest of its own."""
    config = schemathesis.Config.from_dict({"seed": SEED})
    schema = schemathesis.openapi.from_url(fuzz_world.url + "/openapi.json", config=config)
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result.err()
        operations.append(result.ok())
    assert len(operations) >= 25  # /v1, /api, /health and /metrics
    for operation in operations:
        breakable = bool(operation.body) or bool(operation.query)  # a path string can't be
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)[: 1 + breakable]:
            with subtests.test(operation=operation.label, mode=mode.value):
                fuzz(operation, mode, fuzz_world)


def fuzz(operation: Any, mode: Any, world: FuzzWorld) -> None:
    # the credential is fixed (not generated): /v1 with bank's key, /api as the operator
    key = world.caller if operation.path.startswith("/v1/") else OPERATOR
    strategy = operation.as_strategy(mode, headers={"authorization": f"Bearer {key}"})

    @hypothesis.settings(
        max_examples=EXAMPLES,
        derandomize=True,  # the same examples on every run
        database=None,
        deadline=None,
        suppress_health_check=list(hypothesis.HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate, hypothesis.Phase.shrink],
    )
    @hypothesis.given(case=strategy)
    def call(case: Any) -> None:
        aim(case)
        case.call_and_validate(base_url=world.url, checks=CHECKS, timeout=30)

    call()


def aim(case: Any) -> None:
    """Point a generated case at things that exist, so it reaches past the 404s: shop for
    ``/api``, deployment ``chat`` (or the embedder) for valid ``/v1`` bodies. A case that
    deletes a project never names shop or bank."""
    path, valid = case.operation.path, case.meta.generation.mode.is_positive
    if path.startswith("/v1/"):
        body = case.body
        if valid and isinstance(body, dict) and isinstance(body.get("model"), str):
            body["model"] = EMBEDDER if path == "/v1/embeddings" else "chat"
        return
    params = case.path_parameters or {}
    if "project" in params:
        deleting = case.method.upper() == "DELETE" and path == "/api/projects/{project}"
        if not deleting:
            params["project"] = "shop"
        elif params["project"] in ("shop", "bank"):
            params["project"] = "nowhere"
    if valid and "name" in params and "/deployments/" in path:
        params["name"] = "chat"
