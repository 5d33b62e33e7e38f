"""What an eval run asks: a deployment (``NAME`` or ``NAME:ADAPTER``) through the gateway,
with the caller's project key — so quotas, DLP and the usage ledger apply to evaluations
as to any other call.

The gateway's semantic cache is bypassed (``x-genai-cache-control: no-store``) unless the
run asks for it, and then only the first repeat may read it: repeats are never answered
from a cache, or they would not be independent.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import httpx
import openai

from eval._types import Answer, Citation, EvalRow
from genai.errors import AuthenticationError, NotFoundError, UsageError

__all__ = ["GatewayTarget", "split_target"]


def split_target(text: str) -> tuple[str, str | None]:
    """``docs-bot`` → (``docs-bot``, None); ``chat:support-v2`` → (``chat``, ``support-v2``)."""
    deployment, _, adapter = text.strip().partition(":")
    if not deployment:
        raise UsageError(f"target {text!r} names no deployment: write DEPLOYMENT[:ADAPTER]")
    return deployment, adapter or None


class GatewayTarget:
    """Chat completions of one deployment (and adapter) through the gateway at
    ``base_url`` (its ``/v1``), with retries of retryable failures (the openai SDK's:
    connection errors, 408, 429, 5xx, with backoff)."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        model: str,
        params: Mapping[str, Any] | None = None,
        system: str | None = None,
        timeout_s: float = 120.0,
        max_retries: int = 2,
        gateway_cache: bool = False,
    ) -> None:
        self.model = model
        self._params = dict(params or {})
        self._system = system
        self._gateway_cache = gateway_cache
        self._options: dict[str, Any] = {
            "base_url": base_url.rstrip("/"),
            "api_key": api_key,
            "timeout": timeout_s,
            "max_retries": max_retries,
        }
        self._made: openai.AsyncOpenAI | None = None

    @property
    def _client(self) -> openai.AsyncOpenAI:
        """The SDK's client (one connection pool for the run), made on first use: a run
        answered wholly from the eval's result cache never makes one."""
        if self._made is None:
            self._made = openai.AsyncOpenAI(**self._options)
        return self._made

    def body(self, row: EvalRow) -> dict[str, Any]:
        """The request a row becomes (what the eval's result cache is keyed by)."""
        messages = [m.model_dump() for m in row.messages]
        if self._system is not None and messages[0]["role"] != "system":
            messages.insert(0, {"role": "system", "content": self._system})
        return {"model": self.model, "messages": messages, **self._params}

    async def check(self) -> None:
        """Fail before the first row when the key is refused or the deployment unknown."""
        try:
            models = await self._client.models.list()
        except openai.AuthenticationError as exc:
            raise AuthenticationError(f"the gateway refused the API key: {_said(exc)}") from exc
        except openai.APIConnectionError as exc:
            raise UsageError(
                f"cannot reach the gateway at {self._client.base_url}: {exc} "
                "(start it with `genai gateway` or `genai up`, or pass --gateway URL)"
            ) from exc
        names = {m.id for m in models.data}
        deployment = self.model.partition(":")[0]
        if deployment not in names:
            raise NotFoundError(
                f"deployment {deployment!r} not found in the key's project "
                f"(it has {', '.join(sorted(names)) or 'none'})"
            )

    async def answer(self, body: Mapping[str, Any], *, repeat: int) -> Answer:
        """One answer; a refusal or failure of this row is an :class:`Answer` with
        ``error`` (the run goes on), except a refused key (the run stops)."""
        headers = {"x-genai-cache-control": "no-store"}
        if self._gateway_cache and repeat == 0:
            headers = {}
        started = time.perf_counter()
        try:  # the SDK's retries and errors, without its typed request and reply models
            raw = await self._client.post(
                "/chat/completions",
                cast_to=httpx.Response,
                body=dict(body),
                options={"headers": headers},
            )
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            raise AuthenticationError(f"the gateway refused the API key: {_said(exc)}") from exc
        except openai.APIStatusError as exc:
            return Answer(error=f"HTTP {exc.status_code}: {_said(exc)}")
        except openai.APIError as exc:
            return Answer(error=f"{type(exc).__name__}: {exc}")
        latency = (time.perf_counter() - started) * 1000
        try:
            reply = raw.json()
        except ValueError:
            reply = None
        if not isinstance(reply, dict):
            return Answer(error="the gateway's reply is not a chat completion (not a JSON object)")
        return _answer(reply, raw.headers, latency)

    async def aclose(self) -> None:
        if self._made is not None:
            await self._made.close()
            self._made = None


def _answer(reply: Mapping[str, Any], headers: Any, latency_ms: float) -> Answer:
    """An :class:`Answer` of a chat completion (its JSON document) and its headers."""
    choices = reply.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else None
    choice = choice if isinstance(choice, dict) else {}
    message = choice.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    citations = tuple(
        Citation(
            number=int(c.get("number", 0)),
            text=str(c.get("text", "")),
            source=str(c.get("source", "")),
        )
        for c in reply.get("citations") or []
        if isinstance(c, dict)
    )
    found = reply.get("genai")
    ext: dict[str, Any] = found if isinstance(found, dict) else {}
    cost = headers.get("x-genai-cost-usd")
    usage = reply.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    finish = choice.get("finish_reason")
    prompt_version, kb_version = ext.get("prompt_version"), ext.get("kb_version")
    return Answer(
        output=content if isinstance(content, str) else "",
        contexts=tuple(c.text for c in citations),
        citations=citations,
        latency_ms=latency_ms,
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        cost_usd=float(cost) if cost else None,
        finish_reason=finish if isinstance(finish, str) else None,
        request_id=headers.get("x-request-id"),
        prompt_version=prompt_version if isinstance(prompt_version, str) else None,
        kb_version=kb_version if isinstance(kb_version, int) else None,
    )


def _said(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    return str(exc.message)
