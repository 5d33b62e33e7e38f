"""genai-platform's core MLOps layer: AI Projects, the registry and the metadata store.

    >>> import genai
    >>> genai.init()                                    # doctest: +SKIP
    >>> with genai.connect() as client:                 # doctest: +SKIP
    ...     client.projects.create("demo")
    ...     key = client.keys.create("demo", role="developer")

Everything else of the platform (serving, gateway, DLP, cache, RAG, prompts, fine-tuning,
evaluation, agents, apps) builds on this package; it imports none of them.
"""

from genai import errors
from genai._client import Client, InitResult, connect, init
from genai.errors import GenAIError
from genai.settings import Settings

__all__ = ["Client", "GenAIError", "InitResult", "Settings", "connect", "errors", "init"]
__version__ = "0.1.0"
