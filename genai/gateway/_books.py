"""What the gateway writes down about each request it answers or refuses: the response's
headers, the metrics, the usage ledger's row (journaled before the answer completes), the
project's spend against its quota, the recent answers ``/v1/feedback`` reads, the access
log; and the OpenAI-shaped answer of a refusal."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import orjson
from starlette.responses import Response

from genai.errors import GenAIError, error_body, http_headers, http_status
from genai.gateway._cache import Caller
from genai.gateway._ledger import LedgerWriter, UsageRow
from genai.gateway._observe import GatewayMetrics, access_enabled, access_log
from genai.gateway._outcome import Outcome, access_record, caller_of, log_failure, status_word
from genai.gateway._stages import GatewayRequest
from genai.tenancy import AsyncQuotaEnforcer, UsageEvent

__all__ = ["Answered", "Books"]

#: A recent answer: its project id, deployment, target and cost.
Answered = tuple[int, str, str, float]


class Books:
    """The gateway's bookkeeping; :class:`~genai.gateway.Gateway` and its other endpoints
    share one. ``started`` arguments are ``time.perf_counter()`` readings."""

    def __init__(
        self,
        *,
        ledger: LedgerWriter,
        metrics: GatewayMetrics,
        quota: AsyncQuotaEnforcer,
        cache_header: bool,
        max_recent: int,
    ) -> None:
        self._ledger = ledger
        self._metrics = metrics
        self._quota = quota
        self._cache_header = cache_header  # answers say x-genai-cache (a cache stage runs)
        self._max_recent = max_recent
        self._recent: dict[str, Answered] = {}

    async def answered_ok(
        self,
        call: GatewayRequest,
        caller: Caller,
        outcome: Outcome,
        started: float,
        response: Response,
    ) -> None:
        """Headers, metrics and the ledger row of a 200; back once the row is durable. A
        whole (not streamed) answer also says what it cost: ``x-genai-cost-usd``."""
        self.headers(response, call, outcome, started)
        response.headers["x-genai-cost-usd"] = f"{outcome.cost_usd:.10f}"
        self._metrics.requests.labels(call.project, call.deployment, call.endpoint, "200").inc()
        await self.durable(self.record(call, caller, outcome, started))

    async def durable(self, ticket: int) -> None:
        """Wait until a ledger row is on disk (the journal's fsync), if it is not yet."""
        if self._ledger.must_wait(ticket):
            await self._ledger.durable(ticket)

    def headers(
        self, response: Response, call: GatewayRequest, outcome: Outcome, started: float
    ) -> None:
        total = time.perf_counter() - started
        overhead = max(0.0, total - outcome.upstream_s)
        response.headers["x-request-id"] = call.request_id
        response.headers["x-genai-overhead-ms"] = f"{overhead * 1000:.2f}"
        if self._cache_header:
            response.headers["x-genai-cache"] = "hit" if outcome.cache_hit else "miss"
        self._metrics.latency.labels(call.endpoint).observe(total)
        self._metrics.overhead.observe(overhead)

    def record(
        self, call: GatewayRequest, caller: Caller, outcome: Outcome, started: float
    ) -> int:
        """Write the request's ledger row (journaled at once); its ledger ticket."""
        outcome.recorded = True
        latency_ms = (time.perf_counter() - started) * 1000
        event = UsageEvent(
            ts=datetime.now(UTC),
            model=call.deployment,
            target=outcome.target,
            adapter=outcome.adapter,
            prompt_version=call.prompt_version,
            prompt_tokens=outcome.prompt_tokens,
            completion_tokens=outcome.completion_tokens,
            cost_usd=outcome.cost_usd,
            gpu_seconds=outcome.gpu_seconds,
            latency_ms=latency_ms,
            cache_hit=outcome.cache_hit,
            status=outcome.status,
            request_id=call.request_id,
        )
        ticket = self._ledger.add(
            UsageRow(caller.project_id, event, caller.principal.label, caller.principal.key_id)
        )
        self._metrics.ledger_pending.set(self._ledger.pending)
        self._metrics.tokens.labels(call.project, "prompt").inc(outcome.prompt_tokens)
        self._metrics.tokens.labels(call.project, "completion").inc(outcome.completion_tokens)
        if not outcome.cache_hit and outcome.status == "ok":
            self._remember(call, outcome)
            task = asyncio.ensure_future(
                self._quota.record_spend(
                    caller.project_id,
                    tokens=outcome.prompt_tokens + outcome.completion_tokens,
                    cost_usd=outcome.cost_usd,
                )
            )
            task.add_done_callback(log_failure)
        if access_enabled():
            access_log(access_record(call, outcome, latency_ms))
        return ticket

    def refuse(
        self,
        error: GenAIError,
        rid: str,
        endpoint: str,
        call: GatewayRequest | None,
        outcome: Outcome,
        started: float,
    ) -> Response:
        """The OpenAI-shaped answer of a refused request (status and Retry-After from
        :func:`genai.errors.http_status` and :func:`~genai.errors.http_headers`, as every
        other route answers), with its metrics and, once the request is known, its row."""
        status = http_status(error)
        response = Response(
            orjson.dumps(error_body(error)),
            status_code=status,
            media_type="application/json",
            headers={**http_headers(error), "x-request-id": rid},
        )
        project = call.project if call else ""
        self._metrics.requests.labels(
            project, call.deployment if call else "", endpoint, str(status)
        ).inc()
        if call is not None:
            outcome.status = outcome.status if outcome.status != "ok" else status_word(status)
            self.record(call, caller_of(call), outcome, started)
        else:
            access_log(
                {"request_id": rid, "endpoint": endpoint, "status": status, "error": error.code}
            )
        return response

    def answered(self, request_id: str) -> Answered | None:
        """A recent answer (None: not among the ``max_recent`` last)."""
        return self._recent.get(request_id)

    def recent(self) -> int:
        """How many answers are remembered."""
        return len(self._recent)

    def _remember(self, call: GatewayRequest, outcome: Outcome) -> None:
        self._recent[call.request_id] = (
            call.project_id,
            call.deployment,
            outcome.target,
            outcome.cost_usd,
        )
        if len(self._recent) > self._max_recent:  # the oldest tenth goes
            for key in list(self._recent)[: max(1, self._max_recent // 10)]:
                del self._recent[key]
