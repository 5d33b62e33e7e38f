"""Sending a request to one target: an OpenAI-compatible upstream over HTTP, an in-process
LLM backend, or a non-LLM target stage (a knowledge bot). Each answers a whole request
(a response body) or a stream (SSE event bytes, as an async iterator)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson

from genai.errors import BackendError, ValidationError, error_body
from genai.gateway._credentials import CredentialUser, UpstreamCredentials
from genai.gateway._inprocess import InProcessPolicy
from genai.gateway._spec import DeploymentSpec, TargetSpec
from genai.gateway._stages import GatewayRequest, PreparedTarget, TargetStage
from genai.gateway._streaming import first_event, replayed
from genai.gateway._upstream import UpstreamError, Upstreams
from genai.models import Embedder, LLMBackend, create_backend

__all__ = ["TargetCall", "TargetFailed", "Targets"]


class TargetFailed(Exception):
    """A target could not answer; the gateway may retry it or fall back to another."""

    def __init__(self, message: str, reason: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.retry_after = retry_after


@dataclass(frozen=True)
class TargetCall:
    target: TargetSpec
    request: GatewayRequest
    spec: DeploymentSpec

    def body(self) -> dict[str, Any]:
        """The request body as this target must receive it (its own model name)."""
        body = dict(self.request.body)
        for extension in ("prompt", "variables") if self.request.endpoint == "chat" else ():
            body.pop(extension, None)
        if self.target.url is not None:
            body["model"] = self.request.adapter or self.target.upstream_model
            if not self.request.body.get("context"):
                body.pop("context", None)  # OpenAI itself refuses fields it does not know
        return body


class Targets:
    def __init__(
        self,
        stages: dict[str, TargetStage],
        *,
        credentials: UpstreamCredentials | None = None,
        inprocess: InProcessPolicy | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        """``credentials`` resolve the keys url targets send (none given: a target that
        names a key is refused); stages that call upstreams themselves share them.
        ``inprocess`` is the operator's rule for the backends a target may run in this
        process (the default allows those that load no weights); ``embedder`` is the
        process's embedding model, given to extractive targets that name none."""
        self._stages = stages
        self._inprocess = inprocess or InProcessPolicy()
        self._embedder = embedder
        self.credentials = credentials
        if credentials is not None:
            for stage in stages.values():
                if isinstance(stage, CredentialUser):
                    stage.use_credentials(credentials)
        self._upstreams = Upstreams()
        self._local: dict[str, LLMBackend] = {}
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        await self._upstreams.start()

    async def close(self) -> None:
        for stage in self._stages.values():
            closing = getattr(stage, "close", None)
            if closing is not None and inspect.isawaitable(done := closing()):
                await done
        await self._upstreams.close()
        for backend in self._local.values():
            await backend.close()
        self._local.clear()

    # ------------------------------------------------------------ whole answers

    async def complete(self, call: TargetCall) -> dict[str, Any]:
        target = call.target
        if target.url is not None:
            key = await self._key(call)
            if target.responses_api and call.request.endpoint == "chat":
                return await self._responses(call, key)
            try:
                raw = await self._upstreams.post(
                    target, call.request.endpoint, orjson.dumps(call.body()), api_key=key
                )
            except UpstreamError as error:
                raise _failed(error, target) from None
            return _decode(raw, target)
        stage = self._stages.get(target.backend or "")
        if stage is not None:
            return await stage.complete(call.request, target)
        from genai.serving._local import local_complete

        backend = await self._backend(target)
        return await local_complete(
            backend, call.request.endpoint, call.body(), call.request.adapter
        )

    async def _responses(self, call: TargetCall, key: str | None) -> dict[str, Any]:
        """A chat request answered by a target that speaks the Responses API."""
        from genai.gateway._responses_wire import chat_answer, responses_body

        body = orjson.dumps(responses_body(call.body(), call.target))
        try:
            raw = await self._upstreams.post(call.target, "responses", body, api_key=key)
        except UpstreamError as error:
            raise _failed(error, call.target) from None
        return chat_answer(raw, call.target)

    # ------------------------------------------------------------ streams

    async def stream(self, call: TargetCall) -> AsyncGenerator[bytes, None]:
        """Opens the stream (errors here may be retried) and returns its bytes."""
        target = call.target
        if target.url is not None:
            key = await self._key(call)
            endpoint, given = call.request.endpoint, call.body()
            responses = target.responses_api and endpoint == "chat"
            if responses:  # the upstream speaks the Responses API (_responses_wire.py)
                from genai.gateway._responses_wire import responses_body

                endpoint, given = "responses", responses_body(given, target)
            body = orjson.dumps(given)
            try:
                response = await self._upstreams.open_stream(target, endpoint, body, api_key=key)
            except UpstreamError as error:
                raise _failed(error, target) from None
            relay = _relay_http(response, target)
            if responses:
                from genai.gateway._responses_wire import chat_stream

                relay = chat_stream(relay)
            # a target that fails before its first valid event has answered nothing: the
            # gateway may retry it or fall back, as for a whole answer
            head, problem = await first_event(relay)
            if problem:
                await relay.aclose()
                raise TargetFailed(f"{target.name} {problem}", "garbage")
            return replayed(head, relay)
        stage = self._stages.get(target.backend or "")
        if stage is not None:
            chunks = stage.stream(call.request, target)
            try:  # a stage that refuses before its first chunk refuses the request
                first = await anext(chunks)
            except StopAsyncIteration:
                return _sse(chunks, None)
            return _sse(chunks, first)
        from genai.serving._local import local_stream

        backend = await self._backend(target)
        events = await local_stream(
            backend, call.request.endpoint, call.body(), call.request.adapter
        )
        return _passthrough(events)

    async def _key(self, call: TargetCall) -> str | None:
        """The key this url target sends for the request's project; a misconfigured one is
        a 502 naming the fix, raised before anything is sent."""
        target = call.target
        if target.api_key_secret is None and target.api_key_env is None:
            return None
        if self.credentials is None:
            raise BackendError(
                f"deployment target {target.name!r} needs an upstream key, and this gateway "
                "resolves none (Targets built without credentials)",
                backend="gateway",
                status=502,
            )
        return await self.credentials.key_for(
            target, project_id=call.request.project_id, project=call.request.project
        )

    async def prepare(self, request: GatewayRequest, spec: DeploymentSpec) -> None:
        """Let the stage targets of ``spec`` note what their answers depend on."""
        for target in (*spec.targets, *spec.fallbacks):
            stage = self._stages.get(target.backend or "")
            if isinstance(stage, PreparedTarget):
                await stage.prepare(request, target)

    async def warm(self, target: TargetSpec) -> None:
        """Start an in-process target's backend now rather than on its first request."""
        await self._backend(target)

    async def _backend(self, target: TargetSpec) -> LLMBackend:
        options = orjson.dumps(target.options, option=orjson.OPT_SORT_KEYS).decode()
        key = f"{target.backend}:{options}"
        backend = self._local.get(key)
        if backend is None:
            async with self._lock:
                backend = self._local.get(key)
                if backend is None:
                    name = target.backend or ""
                    self._inprocess.check(name, target.options, where=f"target {target.name!r}")
                    kwargs = dict(target.options)
                    if name == "extractive" and self._embedder is not None:
                        kwargs.setdefault("embedder", self._embedder)  # one model in memory
                    backend = create_backend(name, **kwargs)
                    await backend.start()
                    self._local[key] = backend
        return backend


def _failed(error: UpstreamError, target: TargetSpec) -> Exception:
    if error.retryable:
        reason = (
            "timeout"
            if "timed out" in error.message
            else (f"http_{error.status}" if error.status else "connection")
        )
        return TargetFailed(error.message, reason, error.retry_after)
    return _client_error(error, target)


def _client_error(error: UpstreamError, target: TargetSpec) -> Exception:
    """A 4xx from the target. 401, 403 and 404 mean the deployment is misconfigured (the
    gateway's key, or the upstream's model name): the caller cannot fix that, so it is a 502.
    Other 4xx mean the request was at fault: the target's reason is passed on as a 400."""
    message = f"{target.name} refused the request (HTTP {error.status})"
    try:
        detail = orjson.loads(error.body).get("error", {}).get("message")
        if detail:
            message = f"{message}: {detail}"
    except (orjson.JSONDecodeError, AttributeError, TypeError):
        pass
    if error.status in (401, 403, 404):
        return BackendError(
            f"{message}. The deployment's target is misconfigured: ask a maintainer to check "
            "its url, model and api_key_secret",
            backend="gateway",
            status=502,
        )
    return ValidationError(message)


def _decode(raw: bytes, target: TargetSpec) -> dict[str, Any]:
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise TargetFailed(
            f"{target.name} answered with something that is not JSON", "garbage"
        ) from None
    if not isinstance(payload, dict) or not isinstance(
        payload.get("choices", payload.get("data")), list
    ):
        raise TargetFailed(
            f"{target.name} answered with JSON that is not an OpenAI response", "garbage"
        )
    return payload


async def _relay_http(response: Any, target: TargetSpec) -> AsyncGenerator[bytes, None]:
    try:
        async for data in response.content.iter_any():
            yield data
    except TimeoutError:
        raise TargetFailed(
            f"{target.name} stopped sending for {target.timeout_s:g} s", "timeout"
        ) from None
    except Exception as error:  # aiohttp's payload and connection errors
        if isinstance(error, (asyncio.CancelledError, GeneratorExit)):
            raise
        raise TargetFailed(
            f"{target.name} dropped the stream: {type(error).__name__}", "dropped"
        ) from None
    finally:
        response.release()


async def _passthrough(events: AsyncIterator[bytes]) -> AsyncGenerator[bytes, None]:
    try:
        async for event in events:
            yield event
    finally:
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()


async def _sse(
    chunks: AsyncIterator[dict[str, Any]], first: dict[str, Any] | None
) -> AsyncGenerator[bytes, None]:
    try:
        if first is not None:
            yield b"data: " + orjson.dumps(first) + b"\n\n"
        async for chunk in chunks:
            yield b"data: " + orjson.dumps(chunk) + b"\n\n"
    except BackendError as error:
        yield b"data: " + orjson.dumps(error_body(error)) + b"\n\n"
        return
    yield b"data: [DONE]\n\n"
