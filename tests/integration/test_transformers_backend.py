"""The ``transformers`` backend in process, on the tiny model and its adapters (CPU, float32):
the LLMBackend contract (``genai.testing.LLMBackendSuite``). What it does behind HTTP
(batching, adapters per request, SSE) is tested through ``genai serve`` in test_serving*.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from genai.models import LLMBackend
from genai.models.transformers import TransformersBackend
from genai.testing import LLMBackendSuite


class TestTransformersBackend(LLMBackendSuite):
    @pytest.fixture
    async def backend(self, tiny: Any) -> AsyncIterator[LLMBackend]:
        llm = TransformersBackend(model=tiny.model, device="cpu", dtype="float32")
        await llm.start()
        yield llm
        await llm.close()

    @pytest.fixture
    def adapter_path(self, tiny: Any) -> str:
        return str(tiny.adapters["a1"])
