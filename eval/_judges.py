"""Judge deployments, called through the gateway with the run's key (quotas, DLP and the
ledger apply to judging as to answering). A judge call never reads or fills the gateway's
semantic cache; the eval keeps judged values with its results instead."""

from __future__ import annotations

from typing import Any

import openai

from eval._metric import Judge
from eval._suite import Suite

__all__ = ["gateway_judge", "judges_for"]


def judges_for(suite: Suite, *, gateway: str, api_key: str) -> dict[str, Judge]:
    """A judge for each deployment a metric of the suite names with ``judge:``."""
    names = {m.options.get("judge") for m in suite.metrics}
    return {
        name: gateway_judge(
            gateway=gateway,
            api_key=api_key,
            model=name,
            timeout_s=suite.judge_timeout_s or suite.timeout_s,
        )
        for name in sorted(n for n in names if isinstance(n, str))
    }


def gateway_judge(*, gateway: str, api_key: str, model: str, timeout_s: float = 120.0) -> Judge:
    """A judge asking deployment ``model``; each call opens and closes its own client, so
    no connection outlives the event loop of the run that made it."""

    async def judge(messages: list[dict[str, str]], response_format: dict[str, Any] | None) -> str:
        extra: dict[str, Any] = {"response_format": response_format} if response_format else {}
        async with openai.AsyncOpenAI(
            base_url=gateway.rstrip("/"), api_key=api_key, timeout=timeout_s
        ) as client:
            reply = await client.chat.completions.create(
                model=model,
                messages=messages,  # type: ignore[arg-type]
                temperature=0,
                extra_headers={"x-genai-cache-control": "no-store"},
                **extra,
            )
        return reply.choices[0].message.content or ""

    return judge
