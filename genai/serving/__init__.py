"""The OpenAI-compatible model server behind ``genai serve``: one backend, its adapters,
``/v1/chat/completions``, ``/v1/completions``, ``/v1/models``, vLLM's adapter endpoints,
``/health`` and ``/metrics``.

:class:`ChatCompletionRequest` and :class:`CompletionRequest` are the request bodies it
accepts (:func:`check_body` / :func:`parse_body` validate one); :class:`RegistrySource`
resolves registry references (``model:name@version``, ``adapter:name@alias``) of one project.
"""

from genai.serving._app import AdapterResolver, create_app
from genai.serving._metrics import ServerMetrics
from genai.serving._registry import RegistrySource
from genai.serving._schemas import (
    ChatCompletionRequest,
    CompletionRequest,
    check_body,
    parse_body,
)

__all__ = [
    "AdapterResolver",
    "ChatCompletionRequest",
    "CompletionRequest",
    "RegistrySource",
    "ServerMetrics",
    "check_body",
    "create_app",
    "parse_body",
]
