"""The operator's side of the adapter agent: :class:`AgentClient` and :func:`carry_out`.

:func:`carry_out` runs the adapter actions of a reconcile plan (:attr:`Plan.adapters`)
against each pod's agent (``http://POD_IP:8081``): the actions of one pod in the plan's
order, pods side by side. A pod that fails does not stop the others, and nothing raises:
each failed action comes back as one message, for the resource's status and events; the
next reconcile, which observes the pods again, retries what is still missing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from genai.deploy._objects import AGENT_PORT
from genai.deploy._reconcile import AdapterAction
from genai.errors import BackendError, GenAIError

__all__ = ["AgentClient", "agent_url", "carry_out"]

_BACKEND = "adapter-agent"
#: A load fetches the adapter from the artifact store, then vLLM loads it onto the GPU.
DEFAULT_TIMEOUT = 300.0


def agent_url(pod_ip: str, port: int = AGENT_PORT) -> str:
    """The agent's base URL on a pod (an IPv6 address in brackets)."""
    host = f"[{pod_ip}]" if ":" in pod_ip and not pod_ip.startswith("[") else pod_ip
    return f"http://{host}:{port}"


class AgentClient:
    """Async client of one pod's adapter agent; every failure is a :class:`BackendError`
    (``status`` is the agent's HTTP status, None when it could not be reached)."""

    def __init__(
        self,
        base_url: str,
        *,
        client: httpx.AsyncClient | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._own = client is None
        self._client = client or httpx.AsyncClient(timeout=httpx.Timeout(timeout, connect=5.0))
        self._timeout = timeout

    async def __aenter__(self) -> AgentClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client if this object opened it."""
        if self._own:
            await self._client.aclose()

    async def health(self) -> bool:
        """Whether the agent answers ``/health``."""
        try:
            await self._request("GET", "/health")
        except BackendError:
            return False
        return True

    async def loaded(self) -> dict[str, str]:
        """The adapters the pod's vLLM serves now: name → the artifact digest it was loaded
        from (vLLM's path for one the agent did not fetch): :attr:`PodState.adapters`."""
        body = await self._request("GET", "/adapters")
        adapters = body.get("adapters")
        if not isinstance(adapters, dict):
            raise BackendError(
                f"adapter agent at {self.base_url} answered /adapters without an adapter map",
                backend=_BACKEND,
            )
        return {str(k): str(v) for k, v in adapters.items()}

    async def load(self, name: str, artifact: str) -> bool:
        """Serve the adapter directory ``artifact`` (a digest) under ``name``; True when
        something changed (False: that version was served already)."""
        body = await self._request(
            "PUT", f"/adapters/{quote(name, safe='')}", {"artifact": artifact}
        )
        return bool(body.get("changed"))

    async def unload(self, name: str) -> bool:
        """Stop serving ``name``; True when it was served."""
        body = await self._request("DELETE", f"/adapters/{quote(name, safe='')}")
        return bool(body.get("changed"))

    async def _request(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        url = self.base_url + path
        try:
            response = await self._client.request(method, url, json=body, timeout=self._timeout)
        except httpx.HTTPError as error:
            raise BackendError(
                f"adapter agent at {self.base_url} did not answer {method} {path}: "
                f"{type(error).__name__}: {error}",
                backend=_BACKEND,
                retryable=True,
            ) from None
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if response.is_error:
            message = answer.get("error") if isinstance(answer, dict) else None
            raise BackendError(
                f"adapter agent at {self.base_url} refused {method} {path} "
                f"({response.status_code}): {message or response.text.strip()[:300]}",
                backend=_BACKEND,
                status=response.status_code,
                retryable=response.status_code >= 500,
            )
        if not isinstance(answer, dict):
            raise BackendError(
                f"adapter agent at {self.base_url} answered {method} {path} with a body "
                "that is not a JSON object",
                backend=_BACKEND,
                status=response.status_code,
            )
        return answer


async def carry_out(
    actions: Sequence[AdapterAction],
    *,
    port: int = AGENT_PORT,
    client: httpx.AsyncClient | None = None,
) -> list[str]:
    """Run a plan's adapter actions on the pods' agents; one message per failed action
    (empty when all succeeded), in the plan's order. Never raises for a pod's failure."""
    by_pod: dict[tuple[str, str], list[tuple[int, AdapterAction]]] = {}
    for index, action in enumerate(actions):
        by_pod.setdefault((action.pod, action.pod_ip), []).append((index, action))
    if not by_pod:
        return []
    shared = client or httpx.AsyncClient(timeout=httpx.Timeout(DEFAULT_TIMEOUT, connect=5.0))
    try:
        results = await asyncio.gather(
            *(
                _run_pod(AgentClient(agent_url(ip, port), client=shared), todo)
                for (_, ip), todo in by_pod.items()
            )
        )
    finally:
        if client is None:
            await shared.aclose()
    failures = sorted(f for pod in results for f in pod)
    return [message for _, message in failures]


async def _run_pod(
    agent: AgentClient, todo: list[tuple[int, AdapterAction]]
) -> list[tuple[int, str]]:
    failures = []
    for index, action in todo:
        try:
            if action.op == "load":
                await agent.load(action.adapter, action.artifact)
            else:
                await agent.unload(action.adapter)
        except GenAIError as error:
            failures.append((index, f"{_describe(action)}: {error.message}"))
        except Exception as error:  # a bug must not stop the other pods' changes
            failures.append((index, f"{_describe(action)}: {type(error).__name__}: {error}"))
    return failures


def _describe(action: AdapterAction) -> str:
    what = (
        f"load adapter {action.adapter!r} ({action.artifact[:12]}…)"
        if action.op == "load"
        else f"unload adapter {action.adapter!r}"
    )
    return f"pod {action.pod} of revision {action.revision!r}: {what}"
