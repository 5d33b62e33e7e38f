"""A pytest plugin: a project's own test suite asserts on an evaluation.

Turn it on in a ``conftest.py`` (``pytest_plugins = ["eval.pytest_plugin"]``) or with
``pytest -p eval.pytest_plugin``; then::

    def test_the_bot_is_still_faithful(genai_eval):
        job = genai_eval.run("evals/bot.yaml", target="support-bot")
        genai_eval.assert_passes(job, baseline="support-bot@production")

The fixture acts as the platform user of the environment (``GENAI_HOME``,
``GENAI_DATABASE_URL``, ``GENAI_USER``) and calls the gateway at ``GENAI_GATEWAY_URL``
(default ``http://127.0.0.1:4000/v1``) with the key in ``GENAI_API_KEY``, for the project
``GENAI_PROJECT``. A missing setting fails the test with the variable to set.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from eval._gate import GateResult
from eval._load import gate_run
from eval._run import EvalJob, run
from eval._suite import Suite

if TYPE_CHECKING:
    from genai import Client

__all__ = ["EvalSession", "genai_eval"]

DEFAULT_GATEWAY = "http://127.0.0.1:4000/v1"


class EvalSession:
    """Runs suites and gates them, for assertions in a test."""

    def __init__(self, client: Client, project: str, *, gateway: str, api_key: str) -> None:
        self.client = client
        self.project = project
        self.gateway = gateway
        self._api_key = api_key

    def run(
        self,
        suite: Suite | str | Path,
        *,
        target: str,
        repeats: int | None = None,
        fresh: bool = False,
    ) -> EvalJob:
        """An eval run of ``suite`` on ``target`` (an identical earlier answer is reused)."""
        return run(
            self.client,
            self.project,
            suite,
            target=target,
            gateway=self.gateway,
            api_key=self._api_key,
            repeats=repeats,
            fresh=fresh,
        )

    def gate(self, job: EvalJob, *, baseline: str | None = None) -> GateResult:
        """The suite's thresholds checked on ``job`` (against ``baseline``: an eval id or a
        target whose newest run of the suite is the baseline)."""
        result, _, _ = gate_run(self.client, self.project, job.eval.id, baseline=baseline)
        return result

    def assert_passes(self, job: EvalJob, *, baseline: str | None = None) -> GateResult:
        """Fail the test (with every check that did not pass) unless the gate passes."""
        result = self.gate(job, baseline=baseline)
        if result.outcome != "pass":
            lines = [
                f"  {c.outcome}: {c.metric} {c.rule} — {c.detail}"
                for c in result.checks
                if c.outcome != "pass"
            ]
            raise AssertionError(
                f"eval:{job.eval.id} of suite {job.suite.name} did not pass its gate "
                f"({result.outcome}):\n" + "\n".join(lines)
            )
        return result


def _required(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        pytest.fail(f"genai_eval needs {name} in the environment", pytrace=False)
    return value


@pytest.fixture
def genai_eval() -> Iterator[EvalSession]:
    """An :class:`EvalSession` configured from the environment (see the module docstring)."""
    import genai

    project, api_key = _required("GENAI_PROJECT"), _required("GENAI_API_KEY")
    gateway = os.environ.get("GENAI_GATEWAY_URL", DEFAULT_GATEWAY)
    with genai.connect() as client:
        yield EvalSession(client, project, gateway=gateway, api_key=api_key)
