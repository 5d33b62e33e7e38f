"""The knowledge bot's LLMs: what a bot's ``options.llm`` says, and the clients built from
it, kept between requests.

A url LLM (an OpenAI-compatible server) is kept per project and key: its key is resolved
per request through the gateway's credentials (a secret of the request's own project, or a
variable the operator allows), so a rotated secret takes effect and no project ever uses a
client that holds another's key. At most ``max_clients`` are kept (least recently used
out); a client that is replaced or dropped is retired, not closed at once (a request may
still be using it), and closed ``retire_after_s`` later.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

from genai.errors import BackendError, GenAIError
from genai.gateway import (
    GatewayRequest,
    InProcessPolicy,
    UpstreamCredentials,
    inprocess_policy,
)
from genai.models import LLMBackend
from genai.settings import Settings
from genai.store import Store
from rag import KnowledgeBases

__all__ = ["BotLLM", "BotLLMs"]


class BotLLM(BaseModel):
    """The bot's LLM: an in-process ``backend`` by name (default ``extractive``) or an
    OpenAI-compatible ``url``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: str | None = None
    url: str | None = None
    model: str | None = None
    api_key_secret: str | None = Field(
        default=None, description="The url's key: a secret of the bot's project, by name."
    )
    api_key_env: str | None = Field(
        default=None,
        description="The url's key from a variable the operator allows "
        "(GENAI_SECRET_ENV_ALLOWLIST); prefer api_key_secret.",
    )
    options: dict[str, Any] = Field(default_factory=dict)
    timeout_s: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _one(self) -> BotLLM:
        if self.backend is not None and self.url is not None:
            raise ValueError("give the LLM's backend or its url, not both")
        if self.url is not None and not re.match(r"^https?://[^\s/]+", self.url):
            raise ValueError(f"url {self.url!r} is not an http(s) URL")
        if self.api_key_secret is not None and self.api_key_env is not None:
            raise ValueError(
                "give api_key_secret (a project secret) or api_key_env (a variable the "
                "operator allows), not both"
            )
        return self

    @property
    def name(self) -> str:
        return self.url or self.backend or "extractive"

    @property
    def extractive(self) -> bool:
        return self.url is None and (self.backend or "extractive") == "extractive"

    def key(self) -> str:
        return orjson.dumps(self.model_dump(), option=orjson.OPT_SORT_KEYS).decode()


class BotLLMs:
    """The clients of the bots' LLMs (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        max_clients: int = 64,
        retire_after_s: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._store = store
        self._inprocess = inprocess_policy(settings)  # the operator's in-process backends
        self.max_clients = max_clients
        self._retire_after = retire_after_s
        self._clients: OrderedDict[str, tuple[str, LLMBackend]] = OrderedDict()
        self._retired: list[tuple[float, LLMBackend]] = []
        self._credentials: UpstreamCredentials | None = None
        self._lock = asyncio.Lock()
        self._clock = clock

    def use_credentials(self, credentials: UpstreamCredentials) -> None:
        self._credentials = credentials

    async def get(
        self, options: BotLLM, request: GatewayRequest, kbs: KnowledgeBases | None
    ) -> LLMBackend:
        """The LLM ``options`` names, as the request's project uses it."""
        api_key = await self._api_key(options, request)
        key = options.key() if options.url is None else f"{request.project_id}:{options.key()}"
        stamp = _fingerprint(api_key)
        found = self._clients.get(key)
        if found is not None and found[0] == stamp:
            self._clients.move_to_end(key)
            return found[1]
        async with self._lock:
            found = self._clients.get(key)
            if found is not None and found[0] == stamp:
                return found[1]
            fresh = _make_llm(options, kbs, api_key, self._inprocess)
            await fresh.start()
            if found is not None:
                self._retire(found[1])
            self._clients[key] = (stamp, fresh)
            while len(self._clients) > self.max_clients:
                self._retire(self._clients.popitem(last=False)[1][1])
            await self._close_retired(all_of_them=False)
            return fresh

    async def close(self) -> None:
        for _, client in self._clients.values():
            await client.close()
        self._clients.clear()
        await self._close_retired(all_of_them=True)

    @property
    def size(self) -> int:
        return len(self._clients) + len(self._retired)

    def _retire(self, client: LLMBackend) -> None:
        self._retired.append((self._clock() + self._retire_after, client))

    async def _close_retired(self, *, all_of_them: bool) -> None:
        now = self._clock()
        due = [c for at, c in self._retired if all_of_them or at <= now]
        self._retired = [(at, c) for at, c in self._retired if not (all_of_them or at <= now)]
        for client in due:
            await client.close()

    async def _api_key(self, options: BotLLM, request: GatewayRequest) -> str | None:
        if options.url is None or (options.api_key_secret is None and options.api_key_env is None):
            return None
        if self._credentials is None:  # not wired to a gateway: the settings' own
            from genai.tenancy import secret_sealer

            self._credentials = UpstreamCredentials(
                self._store,
                sealer=secret_sealer(self._settings),
                allowlist=self._settings.secret_env_allowlist,
            )
        return await self._credentials.resolve(
            secret=options.api_key_secret,
            env=options.api_key_env,
            project_id=request.project_id,
            project=request.project,
            who="the knowledge bot's LLM",
            fallback_name="bot-llm",
        )


def _fingerprint(api_key: str | None) -> str:
    """Tells keys apart in the client cache without keeping them in its keys."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:32] if api_key else ""


def _make_llm(
    options: BotLLM, kbs: KnowledgeBases | None, api_key: str | None, policy: InProcessPolicy
) -> LLMBackend:
    from genai.models import create_backend

    if options.url is not None:
        return create_backend(
            "openai",
            base_url=options.url,
            model=options.model,
            api_key=api_key,
            timeout=options.timeout_s,
        )
    name = options.backend or "extractive"
    policy.check(name, options.options, where="the knowledge bot's LLM")
    extra = dict(options.options)
    if name == "extractive" and kbs is not None and "embedder" not in extra:
        extra["embedder"] = kbs.embedder(kbs.settings.embedding_model)  # load it once
    try:
        return create_backend(name, **extra)
    except GenAIError:
        raise
    except Exception as error:  # a bad option for the backend's constructor
        raise BackendError(
            f"the knowledge bot's LLM {name!r} could not be built: {error}", backend=name
        ) from error
