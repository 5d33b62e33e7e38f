"""genai-platform's core MLOps layer: AI Projects, the registry and the metadata store.

    >>> import genai
    >>> genai.init()                                    # doctest: +SKIP
    >>> with genai.connect() as client:                 # doctest: +SKIP
    ...     client.projects.create("demo")
    ...     key = client.keys.create("demo", role="developer")

Everything else of the platform (serving, gateway, DLP, cache, RAG, prompts, fine-tuning,
evaluation, agents, apps) builds on this package; it imports none of them.

Public modules beside the subpackages: :mod:`genai.errors`, :mod:`genai.settings`,
:mod:`genai.plugins` (the registries of backends), :mod:`genai.pool` (the fair CPU pool),
:mod:`genai.files` (private files) and :mod:`genai.validation` (name and id rules).
"""

from genai import errors
from genai._client import Client, InitResult, connect, init
from genai._context import Context
from genai.errors import GenAIError
from genai.settings import Settings

__all__ = [
    "Client",
    "Context",
    "GenAIError",
    "InitResult",
    "Settings",
    "connect",
    "errors",
    "init",
]
__version__ = "0.1.0"
