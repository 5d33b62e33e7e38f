"""The key a target sends upstream: a secret of the request's own project, or a variable of
the gateway's environment that the operator allowed.

A deployment is written by a project's maintainers, and the gateway's environment holds the
operator's credentials (``GENAI_ADMIN_TOKEN``, database passwords): a spec that could name
any variable could send it to a URL of its choice. So a target names either

- ``api_key_secret``: a secret of the deployment's own project (``genai secret set``),
  looked up with the project of the authenticated request, never another's; or
- ``api_key_env``: a variable, honoured only when it is on the operator's allowlist
  (``GENAI_SECRET_ENV_ALLOWLIST``). Any other name is refused with the same words whether
  or not the variable exists, before anything is sent.

Secrets are decrypted off the event loop and kept ``ttl_s`` seconds per (project, name); the
admin API drops a project's entries when one of its secrets changes (other processes see
the change within the TTL). Refusals never contain a value.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Callable, Collection, Mapping
from typing import Protocol, runtime_checkable

from genai._crypto import Sealer
from genai.errors import BackendError, ConfigError, GenAIError
from genai.gateway._cache import _TTLCache
from genai.gateway._spec import TargetSpec
from genai.store import Store
from genai.tenancy import read_secret

__all__ = [
    "CredentialUser",
    "UpstreamCredentials",
    "env_not_allowed",
    "secret_not_set",
    "suggested_secret_name",
]


def suggested_secret_name(variable: str, target: str) -> str:
    """A secret name for the key a variable held: ``VENDOR_KEY`` → ``vendor-key``."""
    name = re.sub(r"[^a-z0-9.-]+", "-", variable.lower()).strip("-.")
    return name[:100].rstrip("-.") or f"{target}-key"


def env_not_allowed(who: str, variable: str, project: str, suggestion: str) -> str:
    """The refusal of a non-allowlisted ``api_key_env`` (at apply time and per request): the
    same words whether or not the variable exists, and the fix."""
    return (
        f"{who} reads its key from the environment variable {variable}, which this gateway's "
        "operator has not allowed (GENAI_SECRET_ENV_ALLOWLIST). Store the key as a project "
        f"secret — `genai secret set {suggestion} --project {project}` (or PUT "
        f"/api/projects/{project}/secrets/{suggestion}) — and write `api_key_secret: "
        f"{suggestion}` in the target"
    )


def secret_not_set(who: str, name: str, project: str) -> str:
    return (
        f"{who} sends the project secret {name!r}, which is not set in project {project!r}: "
        f"a maintainer sets it with `genai secret set {name} --project {project}` (or PUT "
        f"/api/projects/{project}/secrets/{name})"
    )


@runtime_checkable
class CredentialUser(Protocol):
    """A target stage that calls upstreams itself (the knowledge bot's LLM) and resolves
    their keys through the gateway's credentials (one cache, one invalidation)."""

    def use_credentials(self, credentials: UpstreamCredentials) -> None: ...


class UpstreamCredentials:
    """Resolves the bearer key of a target for one request's project (see the module doc)."""

    def __init__(
        self,
        store: Store,
        *,
        sealer: Sealer | None,
        allowlist: Collection[str] = (),
        ttl_s: float = 10.0,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._sealer = sealer
        self.allowlist = frozenset(allowlist)
        self._ttl = ttl_s
        self._environ = os.environ if environ is None else environ
        self._cache: _TTLCache[tuple[int, str], str | None] = _TTLCache(10_000, clock=clock)

    async def key_for(
        self,
        target: TargetSpec,
        *,
        project_id: int,
        project: str,
        who: str | None = None,
    ) -> str | None:
        """The key ``target`` sends (None: it sends none), or a 502 naming the fix."""
        return await self.resolve(
            secret=target.api_key_secret,
            env=target.api_key_env,
            project_id=project_id,
            project=project,
            who=who or f"deployment target {target.name!r}",
            fallback_name=target.name,
        )

    async def resolve(
        self,
        *,
        secret: str | None,
        env: str | None,
        project_id: int,
        project: str,
        who: str,
        fallback_name: str = "upstream",
    ) -> str | None:
        if secret is not None:
            value = await self._cache.get(
                (project_id, secret),
                lambda: asyncio.to_thread(self._load, project_id, secret),
            )
            if value is None:
                raise _misconfigured(secret_not_set(who, secret, project))
            return value
        if env is not None:
            if env not in self.allowlist:
                suggestion = suggested_secret_name(env, fallback_name)
                raise _misconfigured(env_not_allowed(who, env, project, suggestion))
            value = self._environ.get(env)
            if not value:  # allowlisted by the operator: saying it is unset reveals nothing
                raise _misconfigured(
                    f"{who} reads its key from ${env}, which the operator allowed but did not "
                    "set in the gateway's environment: set it, or use `api_key_secret`"
                )
            return value
        return None

    def invalidate(self, project_id: int | None = None) -> None:
        """Forget cached secrets (of one project, or all): a changed one applies at once."""
        self._cache.drop(None if project_id is None else (lambda k, _: k[0] == project_id))

    def _load(self, project_id: int, name: str) -> tuple[str | GenAIError | None, float]:
        if self._sealer is None:
            return _misconfigured(
                "this gateway was started without the project secrets' key "
                "(GatewayOptions.secrets): build it with genai.gateway.create_gateway(settings)"
            ), self._ttl
        try:
            with self._store.session() as s:
                value = read_secret(s, self._sealer, project_id, name)
        except ConfigError as error:  # another key wrote it: the operator's problem
            return _misconfigured(error.message), min(self._ttl, 2.0)
        # a missing secret is remembered briefly, so a broken deployment does not load the
        # database on every request, yet a secret set elsewhere is seen soon
        return value, self._ttl if value is not None else min(self._ttl, 2.0)


def _misconfigured(message: str) -> BackendError:
    return BackendError(message, backend="gateway", status=502)
