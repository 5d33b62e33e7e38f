"""The OpenAI-compatible model server behind ``genai serve``: one backend, its adapters,
``/v1/chat/completions``, ``/v1/completions``, ``/v1/models``, vLLM's adapter endpoints,
``/health`` and ``/metrics``."""

from genai.serving._app import AdapterResolver, create_app
from genai.serving._metrics import ServerMetrics

__all__ = ["AdapterResolver", "ServerMetrics", "create_app"]
