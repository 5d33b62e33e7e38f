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
        self._client = openai.AsyncOpenAI(
            base_url=base_url.rstrip("/"),
            api_key=api_key,
            timeout=timeout_s,
            max_retries=max_retries,
        )

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
        try:
            raw = await self._client.chat.completions.with_raw_response.create(
                **dict(body), extra_headers=headers
            )
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            raise AuthenticationError(f"the gateway refused the API key: {_said(exc)}") from exc
        except openai.APIStatusError as exc:
            return Answer(error=f"HTTP {exc.status_code}: {_said(exc)}")
        except openai.APIError as exc:
            return Answer(error=f"{type(exc).__name__}: {exc}")
        latency = (time.perf_counter() - started) * 1000
        return _answer(raw.parse(), raw.headers, latency)

    async def aclose(self) -> None:
        await self._client.close()


def _answer(reply: Any, headers: Any, latency_ms: float) -> Answer:
    choice = reply.choices[0] if reply.choices else None
    extra = reply.model_extra or {}
    citations = tuple(
        Citation(
            number=int(c.get("number", 0)),
            text=str(c.get("text", "")),
            source=str(c.get("source", "")),
        )
        for c in extra.get("citations") or []
        if isinstance(c, dict)
    )
    found = extra.get("genai")
    ext: dict[str, Any] = found if isinstance(found, dict) else {}
    cost = headers.get("x-genai-cost-usd")
    usage = reply.usage
    return Answer(
        output=(choice.message.content or "") if choice is not None else "",
        contexts=tuple(c.text for c in citations),
        citations=citations,
        latency_ms=latency_ms,
        prompt_tokens=usage.prompt_tokens if usage else 0,
        completion_tokens=usage.completion_tokens if usage else 0,
        cost_usd=float(cost) if cost else None,
        finish_reason=choice.finish_reason if choice is not None else None,
        request_id=headers.get("x-request-id"),
        prompt_version=ext.get("prompt_version")
        if isinstance(ext.get("prompt_version"), str)
        else None,
        kb_version=ext.get("kb_version") if isinstance(ext.get("kb_version"), int) else None,
    )


def _said(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    return str(exc.message)
