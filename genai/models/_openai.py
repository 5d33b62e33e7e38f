"""``openai``: any OpenAI-compatible server (vLLM, TGI, Ollama, ``genai serve``, a vendor),
with vLLM's LoRA conventions: an adapter is a listed model whose ``parent`` is the base,
chosen per request by its name in ``model`` and loaded through ``/v1/load_lora_adapter``.

Upstream failures are translated here: 400/413/422 → ``ValidationError``, 404 →
``NotFoundError``, 401/403 → ``BackendError`` (not retryable); 429, 5xx, timeouts and broken
connections → ``BackendError(retryable=True)``, with ``retry_after`` from ``Retry-After``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any

import httpx

from genai.errors import (
    BackendError,
    ConfigError,
    ConflictError,
    GenAIError,
    NotFoundError,
    ValidationError,
)
from genai.models._openai_wire import (
    _estimate_tokens,
    _generation,
    _json_or_text,
    _message,
    _message_of,
    _NoRoute,
    _retry_after,
    _root_url,
    _sampling,
    _sse_data,
    _StreamState,
)
from genai.models._types import (
    Generation,
    GenerationChunk,
    GenerationRequest,
    LoadedAdapter,
)

__all__ = ["OpenAIBackend"]

log = logging.getLogger(__name__)

_NAME = "openai"
_DONE = "[DONE]"


class OpenAIBackend:
    """A model served behind an OpenAI-compatible HTTP API.

    ``base_url`` is the server's root (``http://host:8000``; a trailing ``/v1`` is
    accepted), ``model`` the base model to use when the server lists several (by default
    the one model it lists without a ``parent``), ``api_key`` is sent as a bearer token,
    ``headers`` are added to every request and ``timeout`` bounds each connect, read and
    write in seconds (for streams: the wait for each piece). ``clock`` is the wall clock
    (seconds since the epoch) an HTTP-date ``Retry-After`` is counted from.
    """

    def __init__(
        self,
        *,
        base_url: str,
        model: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        headers: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._root = _root_url(base_url)
        self._clock = clock
        if timeout <= 0:
            raise ValidationError(f"timeout must be positive, not {timeout}", field="timeout")
        self._configured = model
        self._timeout = timeout
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._headers.update(headers or {})
        sensitive = [
            v.split()[-1]
            for k, v in self._headers.items()
            if v.strip() and any(word in k.lower() for word in ("auth", "key", "token", "secret"))
        ]
        self._secrets = [s for s in (api_key, self._root.password, *sensitive) if s]
        self._client: httpx.AsyncClient | None = None
        self._base: str | None = model
        self._window: int | None = None
        self._adapters: list[LoadedAdapter] = []
        self._can_tokenize = True

    # ------------------------------------------------------------ lifecycle

    @property
    def model_id(self) -> str:
        if self._base is None:
            raise ValidationError("the backend is not started: call start() first")
        return self._base

    @property
    def context_window(self) -> int | None:
        return self._window

    async def start(self) -> None:
        """Open the connection pool and learn the base model and adapters from /v1/models."""
        if self._client is not None:
            return
        self._client = httpx.AsyncClient(
            base_url=self._root, headers=self._headers, timeout=httpx.Timeout(self._timeout)
        )
        try:
            await self._refresh()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    # ------------------------------------------------------------ generation

    async def generate(self, request: GenerationRequest) -> Generation:
        path, body = self._body(request, stream=False)
        data = await self._call("POST", path, body)
        try:
            return _generation(data, chat=request.is_chat, echo=request.echo)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise self._garbage(path, f"an unexpected response ({exc!r})") from exc

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[GenerationChunk, None]:
        client = self._require_client()
        path, body = self._body(request, stream=True)
        state = _StreamState()
        try:
            async with client.stream("POST", path, json=body) as response:
                if response.is_error:
                    await response.aread()
                    raise self._status_error(response, path)
                async for data in _sse_data(response.aiter_lines()):
                    if data == _DONE:
                        state.done = True
                        break
                    chunk = state.feed(self._event(data, path), chat=request.is_chat)
                    if chunk is not None:
                        yield chunk
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, path) from exc
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            raise self._garbage(path, f"a malformed stream event ({exc!r})") from exc
        yield self._finish(state, path)

    async def count_tokens(self, request: GenerationRequest) -> int:
        """Prompt tokens from the server's ``/tokenize`` (vLLM's); where the server has none
        (vendors, Ollama, TGI), an estimate: ⌈characters / 4⌉ of each text, plus 4 tokens per
        chat message and 3 for the reply's priming (OpenAI's rule of thumb for English)."""
        if self._can_tokenize:
            body: dict[str, Any] = {"model": self.model_id}
            if request.messages is not None:
                body["messages"] = [_message(m) for m in request.messages]
                body["add_generation_prompt"] = True
                if request.tools:
                    body["tools"] = request.tools
            else:
                body["prompt"] = request.prompt
            try:
                data = await self._call("POST", "/tokenize", body, optional=True)
                return int(data["count"])
            except _NoRoute:
                self._can_tokenize = False
                log.info("%s has no /tokenize: token counts are estimates", self._show("/"))
            except (ValidationError, KeyError, TypeError, ValueError):
                log.debug("/tokenize of %s refused the request: estimating", self._show("/"))
        return _estimate_tokens(request)

    def _body(self, request: GenerationRequest, *, stream: bool) -> tuple[str, dict[str, Any]]:
        adapter = request.adapter
        body: dict[str, Any] = {"model": adapter if adapter else self.model_id}
        if request.messages is not None:
            path = "/v1/chat/completions"
            body["messages"] = [_message(m) for m in request.messages]
            if request.tools:
                body["tools"] = request.tools
                if request.tool_choice is not None:
                    choice = request.tool_choice
                    body["tool_choice"] = (
                        choice
                        if isinstance(choice, str)
                        else {"type": "function", "function": {"name": choice.name}}
                    )
                if not request.parallel_tool_calls:
                    body["parallel_tool_calls"] = False
            if request.response_format is not None:
                body["response_format"] = request.response_format.to_openai()
            if request.logprobs is not None:
                body["logprobs"] = True
                body["top_logprobs"] = request.logprobs
        else:
            if request.tools:
                raise ValidationError(
                    "tools need chat messages: send the request as messages to "
                    "/v1/chat/completions, not as a prompt",
                    field="tools",
                )
            if request.echo and stream:
                raise ValidationError(
                    "echo is not supported on streams by the openai backend: ask without stream",
                    field="echo",
                )
            path = "/v1/completions"
            body["prompt"] = request.prompt if request.prompt_ids is None else request.prompt_ids
            if request.logprobs is not None:
                body["logprobs"] = request.logprobs
            if request.echo:
                body["echo"] = True
        body.update(_sampling(request.params))
        if request.context:
            body["context"] = [{"id": p.id, "text": p.text} for p in request.context]
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return path, body

    def _event(self, data: str, path: str) -> dict[str, Any]:
        try:
            event = json.loads(data)
        except json.JSONDecodeError:
            raise self._garbage(path, f"a stream event that is not JSON: {data[:80]!r}") from None
        if not isinstance(event, dict):
            raise self._garbage(path, f"a stream event that is not an object: {data[:80]!r}")
        if "error" in event:  # vLLM reports a failure inside a started stream this way
            code = event["error"].get("code") if isinstance(event["error"], dict) else None
            status = code if isinstance(code, int) else 500
            raise self._error(status, _message_of(event), None, path)
        return event

    def _finish(self, state: _StreamState, path: str) -> GenerationChunk:
        if state.finish_reason is None:
            how = "sent [DONE]" if state.done else "closed the stream"
            raise BackendError(
                f"{self._show(path)} {how} before the generation finished (no finish_reason): "
                "retry the request",
                backend=_NAME,
                retryable=True,
            )
        return GenerationChunk(
            finish_reason=state.finish_reason,
            tool_calls=state.tools.result(),
            prompt_tokens=state.usage.get("prompt_tokens"),
            completion_tokens=state.usage.get("completion_tokens"),
        )

    # ------------------------------------------------------------ adapters

    def adapters(self) -> list[LoadedAdapter]:
        return list(self._adapters)

    async def load_adapter(self, name: str, path: str, *, replace: bool = False) -> LoadedAdapter:
        body: dict[str, Any] = {"lora_name": name, "lora_path": path}
        if replace:
            body["load_inplace"] = True
        await self._call("POST", "/v1/load_lora_adapter", body, parse=False)
        await self._refresh()
        found = [a for a in self._adapters if a.name == name]
        return found[0] if found else LoadedAdapter(name=name, path=path, base_model=self.model_id)

    async def unload_adapter(self, name: str) -> None:
        await self._call("POST", "/v1/unload_lora_adapter", {"lora_name": name}, parse=False)
        await self._refresh()

    async def _refresh(self) -> None:
        """Read /v1/models: the base model, its context window, and its adapters."""
        try:
            data = await self._call("GET", "/v1/models", None, optional=True)
            entries = [e for e in data["data"] if isinstance(e, dict) and "id" in e]
        except _NoRoute:
            if self._configured is None:
                raise ConfigError(
                    f"{self._show('/v1/models')} does not list its models: configure the "
                    "backend's model option with the name the server serves"
                ) from None
            self._adapters = []
            return
        except (KeyError, TypeError) as exc:
            raise self._garbage("/v1/models", "a model list without data") from exc
        base = self._choose_base(entries)
        self._base = str(base["id"])
        window = base.get("max_model_len")
        self._window = window if isinstance(window, int) and window > 0 else None
        self._adapters = [
            LoadedAdapter(name=str(e["id"]), path=str(e.get("root") or ""), base_model=self._base)
            for e in entries
            if e.get("parent") == self._base
        ]

    def _choose_base(self, entries: list[dict[str, Any]]) -> dict[str, Any]:
        wanted = self._configured
        if wanted is not None:
            for entry in entries:
                if entry["id"] == wanted:
                    return entry
            names = ", ".join(sorted(str(e["id"]) for e in entries)) or "none"
            raise NotFoundError(
                f"{self._show('/v1/models')} does not serve the model {wanted!r} (it serves: "
                f"{names}): fix the backend's model option"
            )
        bases = [e for e in entries if not e.get("parent")]
        if len(bases) == 1:
            return bases[0]
        names = ", ".join(sorted(str(e["id"]) for e in bases)) or "none"
        raise ConfigError(
            f"{self._show('/v1/models')} serves {len(bases)} base models ({names}): "
            "configure the backend's model option to choose one"
        )

    # ------------------------------------------------------------ HTTP and errors

    async def _call(
        self, method: str, path: str, body: Any, *, parse: bool = True, optional: bool = False
    ) -> Any:
        """The JSON answer to one request; ``optional`` routes raise ``_NoRoute`` when the
        server lacks them (404, 405, 501)."""
        client = self._require_client()
        try:
            response = await client.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, path) from exc
        if optional and response.status_code in (404, 405, 501):
            raise _NoRoute(path)
        if response.is_error:
            raise self._status_error(response, path)
        if not parse:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise self._garbage(path, f"a body that is not JSON: {response.text[:80]!r}") from exc

    def _status_error(self, response: httpx.Response, path: str) -> GenAIError:
        return self._error(
            response.status_code,
            _message_of(_json_or_text(response)),
            _retry_after(response.headers, now=self._clock),
            path,
        )

    def _error(self, status: int, message: str, retry_after: float | None, path: str) -> GenAIError:
        where, said = self._show(path), self._scrub(message)
        if status in (400, 413, 422):
            return ValidationError(f"{where} rejected the request ({status}): {said}")
        if status in (401, 403):
            return BackendError(
                f"{where} refused the API key ({status}): {said}; check the api_key (and "
                "headers) configured for this endpoint",
                backend=_NAME,
                status=status,
            )
        if status == 404:
            return NotFoundError(f"{where}: {said} (check the model or adapter name)")
        if status == 409:
            return ConflictError(f"{where}: {said}")
        if status == 429:
            wait = f"retry in {retry_after:g} s" if retry_after is not None else "retry later"
            return BackendError(
                f"{where} is rate limiting (429): {said}; {wait}",
                backend=_NAME,
                status=status,
                retryable=True,
                retry_after=retry_after,
            )
        retryable = status >= 500 or status == 408
        advice = "retry later, or check the server's logs" if retryable else "check the request"
        return BackendError(
            f"{where} failed ({status}): {said}; {advice}",
            backend=_NAME,
            status=status,
            retryable=retryable,
            retry_after=retry_after if retryable else None,
        )

    def _transport_error(self, exc: httpx.HTTPError, path: str) -> BackendError:
        where, said = self._show(path), self._scrub(str(exc) or type(exc).__name__)
        if isinstance(exc, httpx.TimeoutException):
            message = (
                f"{where} did not answer within {self._timeout:g} s ({type(exc).__name__}): "
                "retry, or raise the backend's timeout"
            )
        elif isinstance(exc, httpx.ConnectError):
            message = (
                f"cannot connect to {where}: {said}; check that the server is running "
                "and that base_url is right"
            )
        elif isinstance(exc, httpx.TransportError):
            message = f"the connection to {where} broke: {said}; retry the request"
        else:
            return BackendError(f"request to {where} failed: {said}", backend=_NAME)
        return BackendError(message, backend=_NAME, retryable=True)

    def _garbage(self, path: str, what: str) -> BackendError:
        return BackendError(
            f"{self._show(path)} answered with {self._scrub(what)}: is base_url an "
            "OpenAI-compatible server?",
            backend=_NAME,
            retryable=False,
        )

    def _show(self, path: str) -> str:
        """The URL of ``path`` for messages, without credentials or query."""
        url = self._root
        auth = "***@" if url.userinfo else ""
        port = f":{url.port}" if url.port else ""
        return f"{url.scheme}://{auth}{url.host}{port}{url.path.rstrip('/')}{path}"

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _require_client(self) -> httpx.AsyncClient:
        if self._client is None:
            raise ValidationError("the backend is not started: call start() first")
        return self._client
