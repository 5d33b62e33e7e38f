"""The adapter agent: the sidecar of each vLLM pod that changes its LoRA adapters in place.

The operator asks it, over HTTP on the pod's IP (``genai k8s agent``, port 8081), to serve
an adapter version under a name, or to stop serving a name. The agent fetches the
adapter's directory from the artifact store into the volume it shares with vLLM
(``/adapters/<digest>``, atomically, every byte checked), then calls vLLM's runtime LoRA
API (``VLLM_ALLOW_RUNTIME_LORA_UPDATING``): ``/v1/load_lora_adapter`` and
``/v1/unload_lora_adapter``. vLLM keeps running, so a new adapter version rolls out without
restarting the pod or reloading the base model.

Routes (answers are JSON; errors are ``{"error": MESSAGE}`` with 400 for a bad name or
digest, 404 for a digest the store does not hold, 502 when the store or vLLM fails, with
vLLM's own message):

- ``GET /health`` — 200 while the agent runs.
- ``GET /adapters`` — ``{"adapters": {name: artifact}, "paths": {name: path}}``: the LoRA
  adapters vLLM serves now, read from its ``/v1/models`` (entries with a ``parent``;
  ``root`` is the path). ``artifact`` is the digest of the version served (the name of its
  directory under ``--dir``), or vLLM's path for an adapter the agent did not fetch; it is
  what the reconciler compares with the wanted version (:attr:`PodState.adapters`).
- ``PUT /adapters/{name}`` with ``{"artifact": DIGEST}`` — serve that version under
  ``name``. Loading what is served already changes nothing; another version under the
  same name is unloaded, then the new one loaded (the old one is loaded back if vLLM
  refuses the new one).
- ``DELETE /adapters/{name}`` — stop serving ``name``; a name not served is a success.

Adapter changes are serialised (one at a time per agent). Directories of versions no
longer served are removed from the shared volume after each change.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from genai.deploy._fetch import check_digest, fetch_from, open_store
from genai.deploy._objects import AGENT_PORT
from genai.errors import GenAIError, ValidationError, http_status

__all__ = ["ADAPTER_NAME", "AGENT_PORT", "agent_app", "serve_agent"]

#: What an adapter (vLLM lora_name) may be called.
ADAPTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_DIGEST_DIR = re.compile(r"^[0-9a-f]{64}$")
#: Loading an adapter reads its weights onto the GPU: allow it time.
_VLLM_TIMEOUT = httpx.Timeout(120.0, connect=5.0)


class _VllmError(Exception):
    """vLLM answered with an error, or could not be reached."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class _Agent:
    """The agent's state: where adapters go, where vLLM is, and the change lock."""

    def __init__(
        self,
        artifacts_url: str,
        adapters_dir: Path,
        vllm_url: str,
        client: httpx.AsyncClient | None,
    ) -> None:
        self.artifacts_url = artifacts_url
        self.adapters_dir = adapters_dir.absolute()  # vLLM needs absolute paths
        self.vllm_url = vllm_url.rstrip("/")
        self.client = client
        self.lock = asyncio.Lock()

    # ------------------------------------------------------------ vLLM

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        url = self.vllm_url + path
        try:
            if self.client is not None:
                response = await self.client.request(method, url, json=body)
            else:
                async with httpx.AsyncClient(timeout=_VLLM_TIMEOUT) as client:
                    response = await client.request(method, url, json=body)
        except httpx.HTTPError as error:
            raise _VllmError(
                f"vLLM at {self.vllm_url} did not answer {method} {path}: "
                f"{type(error).__name__}: {error}"
            ) from None
        if response.is_error:
            raise _VllmError(
                f"vLLM refused {method} {path} ({response.status_code}): {_vllm_message(response)}",
                response.status_code,
            )
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response.text

    async def loaded(self) -> dict[str, str]:
        """The LoRA adapters vLLM serves now: name → path."""
        listing = await self._call("GET", "/v1/models")
        data = listing.get("data") if isinstance(listing, dict) else None
        if not isinstance(data, list):
            raise _VllmError(f"vLLM's /v1/models at {self.vllm_url} is not a model list")
        return {
            str(m["id"]): str(m.get("root") or "")
            for m in data
            if isinstance(m, dict) and m.get("parent") and "id" in m
        }

    def artifact_of(self, path: str) -> str:
        """The digest a served path was fetched from, or the path (not the agent's)."""
        where = Path(path)
        if _DIGEST_DIR.match(where.name) and where.parent == self.adapters_dir:
            return where.name
        return path

    async def _load(self, name: str, path: str) -> None:
        await self._call("POST", "/v1/load_lora_adapter", {"lora_name": name, "lora_path": path})

    async def _unload(self, name: str) -> None:
        await self._call("POST", "/v1/unload_lora_adapter", {"lora_name": name})

    # ------------------------------------------------------------ changes

    async def put(self, name: str, digest: str) -> dict[str, Any]:
        async with self.lock:
            target = self.adapters_dir / digest
            await asyncio.to_thread(self._fetch, digest, target)
            path = str(target)
            before = (await self.loaded()).get(name)
            answer = {"adapter": name, "artifact": digest, "path": path, "changed": False}
            if before == path:
                return answer
            if before is not None:
                await self._unload(name)
                try:
                    await self._load(name, path)
                except _VllmError:
                    await self._restore(name, before)
                    raise
            else:
                await self._load(name, path)
            await self._prune()
            return {**answer, "changed": True, "replaced": before}

    async def delete(self, name: str) -> dict[str, Any]:
        async with self.lock:
            if name not in await self.loaded():
                return {"adapter": name, "changed": False}
            try:
                await self._unload(name)
            except _VllmError as error:
                if error.status != 404:  # unloaded meanwhile: what was asked
                    raise
            await self._prune()
            return {"adapter": name, "changed": True}

    def _fetch(self, digest: str, target: Path) -> None:
        fetch_from(open_store(self.artifacts_url), digest, target)

    async def _restore(self, name: str, path: str) -> None:
        """Load the version a failed swap unloaded (best effort: the swap's error is what
        the caller hears)."""
        with suppress(_VllmError):
            await self._load(name, path)

    async def _prune(self) -> None:
        """Remove fetched versions (``<digest>`` directories) no adapter is served from."""
        try:
            used = {Path(p).name for p in (await self.loaded()).values()}
        except _VllmError:
            return
        if not self.adapters_dir.is_dir():
            return
        for entry in self.adapters_dir.iterdir():
            if _DIGEST_DIR.match(entry.name) and entry.name not in used and entry.is_dir():
                await asyncio.to_thread(shutil.rmtree, entry, True)


def _vllm_message(response: httpx.Response) -> str:
    """vLLM's error message: ``{"error": {"message"}}``, FastAPI's ``{"detail"}``, or text."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.text.strip()[:500] or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
        if "message" in body:
            return str(body["message"])
        if "detail" in body:
            return str(body["detail"])
    return json.dumps(body)[:500]


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _check_name(name: str) -> None:
    if not ADAPTER_NAME.match(name):
        raise ValidationError(
            f"{name!r} is not an adapter name: use 1-100 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
            field="name",
        )


def agent_app(
    *,
    artifacts_url: str,
    adapters_dir: Path,
    vllm_url: str,
    client: httpx.AsyncClient | None = None,
) -> Starlette:
    """The agent's ASGI app. ``client`` (optional) is the HTTP client it calls vLLM with;
    without one, each call opens its own."""
    agent = _Agent(artifacts_url, Path(adapters_dir), vllm_url, client)

    async def guarded(work: Any) -> JSONResponse:
        try:
            return JSONResponse(await work)
        except _VllmError as error:
            return _error(502, error.message)
        except GenAIError as error:
            return _error(http_status(error), error.message)
        except OSError as error:
            return _error(502, f"fetching from the artifact store failed: {error}")

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def adapters(request: Request) -> JSONResponse:
        async def listing() -> dict[str, Any]:
            paths = await agent.loaded()
            return {
                "adapters": {name: agent.artifact_of(path) for name, path in paths.items()},
                "paths": paths,
            }

        return await guarded(listing())

    async def put(request: Request) -> JSONResponse:
        name = request.path_params["name"]

        async def work() -> dict[str, Any]:
            _check_name(name)
            digest = _artifact_of(await request.body())
            return await agent.put(name, digest)

        return await guarded(work())

    async def delete(request: Request) -> JSONResponse:
        name = request.path_params["name"]

        async def work() -> dict[str, Any]:
            _check_name(name)
            return await agent.delete(name)

        return await guarded(work())

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        agent.adapters_dir.mkdir(parents=True, exist_ok=True)
        yield

    return Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/adapters", adapters, methods=["GET"]),
            Route("/adapters/{name}", put, methods=["PUT"]),
            Route("/adapters/{name}", delete, methods=["DELETE"]),
        ],
        lifespan=lifespan,
    )


def _artifact_of(raw: bytes) -> str:
    try:
        body = json.loads(raw) if raw else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("artifact"), str):
        raise ValidationError(
            'the body is JSON {"artifact": DIGEST}: the sha256 of the adapter directory',
            field="artifact",
        )
    digest: str = body["artifact"]
    check_digest(digest)
    return digest


def serve_agent(
    *,
    artifacts_url: str,
    adapters_dir: Path,
    vllm_url: str,
    host: str = "0.0.0.0",
    port: int = AGENT_PORT,
) -> None:
    """Run the agent with uvicorn until stopped (``genai k8s agent``)."""
    import uvicorn

    open_store(artifacts_url)  # a wrong URL fails at start, not at the first load
    app = agent_app(artifacts_url=artifacts_url, adapters_dir=adapters_dir, vllm_url=vllm_url)
    uvicorn.run(app, host=host, port=port, log_level="info")
