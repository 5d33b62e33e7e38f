"""The request path of the gateway: key → project → deployment → quota → stages → target
(with retries, fallbacks and circuit breakers) → stages → client, and the ledger row."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from genai.errors import (
    BackendError,
    GenAIError,
    NotFoundError,
    error_body,
    http_status,
)
from genai.gateway._admission import Admission, Slot, cpu_pool
from genai.gateway._bandits import Bandits
from genai.gateway._cache import Caller, CallerCache, Route, RouteTable
from genai.gateway._checks import check_request
from genai.gateway._credentials import UpstreamCredentials
from genai.gateway._http import (
    as_response,
    backoff,
    bearer,
    error_event,
    iterate,
    json_body,
    response_id,
    text_of,
    unless_gone,
    with_id,
)
from genai.gateway._journal import Journal
from genai.gateway._ledger import LedgerWriter, UsageRow
from genai.gateway._observe import GatewayMetrics, access_enabled, access_log, span
from genai.gateway._options import GatewayOptions, Stages
from genai.gateway._outcome import (
    Outcome,
    access_record,
    account,
    caller_of,
    log_failure,
    status_word,
)
from genai.gateway._spec import DeploymentSpec, TargetSpec
from genai.gateway._stages import (
    GatewayRequest,
)
from genai.gateway._streaming import SseRelay, replay_events
from genai.gateway._targets import TargetCall, TargetFailed, Targets
from genai.gateway._traffic import Circuits, choose, plan_attempts
from genai.store import Store
from genai.tenancy import Action, AsyncQuotaEnforcer, Resource, UsageEvent, authorize

__all__ = ["Gateway"]

log = logging.getLogger("genai.gateway")


class Gateway:
    def __init__(
        self,
        store: Store,
        quota: AsyncQuotaEnforcer,
        *,
        stages: Stages | None = None,
        options: GatewayOptions | None = None,
        metrics: GatewayMetrics | None = None,
        rng: random.Random | None = None,
        journal: Journal | None = None,
        circuits: Circuits | None = None,
    ) -> None:
        self.options = options or GatewayOptions()
        self.store = store
        self.quota = quota
        self.stages = stages or Stages()
        self.metrics = metrics or GatewayMetrics()
        self.callers = CallerCache(store, ttl_s=self.options.key_cache_ttl_s)
        self.routes = RouteTable(store, ttl_s=self.options.route_cache_ttl_s)
        self.ledger = LedgerWriter(
            store, interval_s=self.options.ledger_interval_s, journal=journal
        )
        self.targets = Targets(
            self.stages.targets,
            credentials=UpstreamCredentials(
                store,
                sealer=self.options.secrets,
                allowlist=self.options.secret_env_allowlist,
                ttl_s=self.options.key_cache_ttl_s,
            ),
        )
        self.pool = self.stages.pool or cpu_pool(self.options)
        self.admission = Admission(self.options, self.pool)
        self.circuits = circuits if circuits is not None else Circuits()
        self.bandits = Bandits(store)
        self.recent: dict[
            str, tuple[int, str, str, float]
        ] = {}  # request id → project, deployment, target, cost
        self.rng = rng or random.Random()
        self._shadows: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self.targets.start()
        await asyncio.to_thread(self.ledger.start)  # replays what a dead process journaled
        if self.options.prewarm:
            for target in await asyncio.to_thread(self._local_targets):
                try:
                    await self.targets.warm(target)
                except Exception as error:  # a broken target fails its requests, not the gateway
                    log.warning("could not start target %s: %s", target.name, error)

    def _local_targets(self) -> list[TargetSpec]:
        """The in-process targets of every deployment's newest revision."""
        from sqlalchemy import select

        from genai.gateway._spec import parse_spec
        from genai.store import _schema as t

        with self.store.session() as s:
            specs = s.scalars(select(t.Deployment.spec)).all()
        found: dict[str, TargetSpec] = {}
        for raw in specs:
            try:
                spec = parse_spec(raw)
            except GenAIError:
                continue
            for target in [*spec.targets, *spec.fallbacks]:
                if target.backend and target.backend not in self.stages.targets:
                    found.setdefault(f"{target.backend}{sorted(target.options.items())}", target)
        return list(found.values())

    async def close(self) -> None:
        for task in list(self._shadows):
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(task, timeout=5)
        await self.targets.close()
        self.pool.close()  # queued CPU jobs are cancelled; running ones finish
        await asyncio.to_thread(self.ledger.close)

    # ------------------------------------------------------------ entry

    async def handle(self, http: Request, endpoint: str) -> Response:
        """Answer one chat or completion request (every refusal in OpenAI's error shape).
        A client that leaves before its answer cancels the work still to do (its CPU jobs
        not started, its upstream call) and gets a ``cancelled`` ledger row."""
        started = time.perf_counter()
        rid = os.urandom(12).hex()
        try:
            caller = await self.callers.resolve(bearer(http))
            body = await json_body(http, self.options.max_body_bytes)
        except GenAIError as error:
            return self._refuse(error, rid, endpoint, None, Outcome(), started)
        return await unless_gone(http, self._answer(http, endpoint, caller, body, rid, started))

    async def _answer(
        self,
        http: Request,
        endpoint: str,
        caller: Caller,
        body: Any,
        rid: str,
        started: float,
    ) -> Response:
        call: GatewayRequest | None = None
        outcome = Outcome()
        slot: Slot | None = None
        try:
            model = check_request(endpoint, body)
            deployment, _, adapter = model.partition(":")
            authorize(
                caller.principal,
                Action.MODEL_INVOKE,
                Resource("deployment", deployment, caller.project_id),
            )
            route = await self.routes.get(caller.project_id, deployment)
            spec = route.usable()
            if adapter and adapter not in spec.adapters:
                raise NotFoundError(f"The model `{model}` does not exist.")
            call = GatewayRequest(
                request_id=rid,
                endpoint=endpoint,
                principal=caller.principal,
                project_id=caller.project_id,
                project=caller.project,
                project_options=caller.options,
                body=body,
                deployment=deployment,
                adapter=adapter or None,
                session_id=http.headers.get("x-genai-session"),
                headers={
                    k: v
                    for k, v in http.headers.items()
                    if k.startswith("x-genai-") or k == spec.sticky_header.lower()
                },
            )
            if self.stages.request:
                call.extra["unchecked"] = True  # until every request stage has run (logs)
            # after the request is known, so that a refusal has its ledger row too
            slot = self.admission.enter(call, caller.limits)  # size (400), in progress (429)
            await self.quota.admit(caller.project_id, caller.project, caller.limits)
            with span(
                "gateway.request",
                {
                    "genai.request_id": rid,
                    "genai.project": caller.project,
                    "genai.deployment": deployment,
                },
            ):
                for stage in self.stages.request:
                    await stage.before(call)
                call.extra.pop("unchecked", None)
                if call.stream:
                    stream = await self._stream(call, caller, route, spec, outcome, started)
                    return slot.until_sent(stream)  # the slot is held until it is sent
                payload = await self._complete(call, caller, route, spec, outcome)
            response = Response(orjson.dumps(payload), media_type="application/json")
            await self._durable(self._finish(call, caller, outcome, started, response, 200))
            return response
        except GenAIError as error:
            return self._refuse(error, rid, endpoint, call, outcome, started)
        except asyncio.CancelledError:  # the client left (or the server is stopping)
            if call is not None and not outcome.recorded:
                outcome.status = "cancelled"
                self._record(call, caller, outcome, started)
            raise
        finally:
            if slot is not None:
                slot.leave()

    # ------------------------------------------------------------ whole answers

    async def _complete(
        self,
        call: GatewayRequest,
        caller: Caller,
        route: Route,
        spec: DeploymentSpec,
        outcome: Outcome,
    ) -> dict[str, Any]:
        _note_for_stages(call, route, outcome)
        await self.targets.prepare(call, spec)
        cache = self.stages.cache
        if cache is not None:
            hit = await cache.lookup(call)
            self.metrics.cache.labels(call.project, "hit" if hit else "miss").inc()
            if hit is not None:
                outcome.cache_hit, outcome.status = True, "ok"
                outcome.target = "cache"
                payload = with_id(dict(hit.response), call)
                return await self._after(call, payload)
        target, payload = await self._attempts(call, spec, outcome, self.targets.complete)
        account(outcome, target, payload.get("usage"))
        payload = with_id(payload, call)
        # the cache keeps the target's own answer (response stages run again on a hit, and
        # one may restore personal data the cache must not hold); so does a shadow compare
        keep = self.stages.response and (cache is not None or spec.shadow is not None)
        raw = orjson.loads(orjson.dumps(payload)) if keep else payload
        payload = await self._after(call, payload)
        if cache is not None:
            await cache.store(call, raw)
        self._maybe_shadow(call, spec, target, text_of(raw))
        return payload

    async def _after(self, call: GatewayRequest, payload: dict[str, Any]) -> dict[str, Any]:
        for stage in reversed(self.stages.response):
            payload = await stage.after(call, payload)
        return payload

    async def _attempts(
        self,
        call: GatewayRequest,
        spec: DeploymentSpec,
        outcome: Outcome,
        send: Callable[[TargetCall], Any],
    ) -> tuple[TargetSpec, Any]:
        """The first target (chosen, then fallbacks) that answers, with retries on each."""
        bandit = None
        if spec.policy == "bandit":
            bandit = await self.bandits.get(call.project_id, call.deployment, spec)
        chosen = choose(
            spec,
            project=call.project,
            deployment=call.deployment,
            sticky_value=call.headers.get(spec.sticky_header.lower()),
            bandit=bandit,
            rng=self.rng,
        )
        failures: list[str] = []
        waits: list[float] = []
        for target in plan_attempts(spec, chosen):
            circuit = self.circuits.get(target, spec)
            for attempt in range(spec.retries + 1):
                if not circuit.allow():
                    failures.append(f"{target.name}: circuit open")
                    waits.append(circuit.retry_after())
                    break
                started = time.perf_counter()
                try:
                    result = await send(TargetCall(target, call, spec))
                except asyncio.CancelledError:
                    circuit.abandon()  # the caller left: a half-open trial must not stay taken
                    raise
                except TargetFailed as error:
                    circuit.failure()
                    self.metrics.upstream_errors.labels(target.name, error.reason).inc()
                    failures.append(f"{target.name}: {error.message}")
                    if error.retry_after:
                        waits.append(error.retry_after)
                    if attempt < spec.retries and circuit.state != "open":
                        await asyncio.sleep(
                            backoff(spec.backoff_s, attempt, error.retry_after, self.rng)
                        )
                    continue
                except GenAIError:
                    circuit.success()  # the target answered: the request was at fault
                    raise
                circuit.success()
                elapsed = time.perf_counter() - started
                outcome.upstream_s += elapsed
                outcome.target = target.name
                outcome.adapter = call.adapter or target.adapter or ""
                self.metrics.upstream.labels(target.name).observe(elapsed)
                return target, result
            self.metrics.set_circuits(self.circuits.states())
        outcome.status = "upstream_error"
        raise BackendError(
            f"deployment {call.deployment!r}: no target answered ({'; '.join(failures)})",
            backend="gateway",
            status=503 if all("circuit open" in f for f in failures) else 502,
            retryable=True,
            retry_after=min(waits) if waits else None,
        )

    # ------------------------------------------------------------ streams

    async def _stream(
        self,
        call: GatewayRequest,
        caller: Caller,
        route: Route,
        spec: DeploymentSpec,
        outcome: Outcome,
        started: float,
    ) -> Response:
        wants_usage = bool((call.body.get("stream_options") or {}).get("include_usage"))
        _note_for_stages(call, route, outcome)
        await self.targets.prepare(call, spec)
        cache = self.stages.cache
        if cache is not None:
            hit = await cache.lookup(call)
            self.metrics.cache.labels(call.project, "hit" if hit else "miss").inc()
            if hit is not None:
                outcome.cache_hit, outcome.target = True, "cache"
                payload = await self._after(call, with_id(dict(hit.response), call))
                events = replay_events(payload, include_usage=wants_usage)
                response = StreamingResponse(iterate(events), media_type="text/event-stream")
                account(outcome, None, payload.get("usage"))
                await self._durable(self._finish(call, caller, outcome, started, response, 200))
                return response
        call.body["stream_options"] = {
            **(call.body.get("stream_options") or {}),
            "include_usage": True,
        }
        target, events = await self._attempts(call, spec, outcome, self.targets.stream)

        def filters() -> list[Any]:  # a chain per choice of the answer
            made = (s.stream(call) for s in reversed(self.stages.response))
            return [f for f in made if f is not None]

        relay = SseRelay(
            response_id=response_id(call),
            client_wants_usage=wants_usage,
            model=call.body.get("model"),
            make_filters=filters,
            keep_text=cache is not None or spec.shadow is not None,
        )

        recorded: list[int] = []  # the ledger ticket, once the row is written

        def settle() -> int:
            """The request's ledger row (once), from what the stream came to."""
            if not recorded:
                if relay.error is not None:
                    outcome.status = "upstream_error"
                account(outcome, target, relay.usage)
                recorded.append(self._record(call, caller, outcome, started))
            return recorded[0]

        async def body() -> AsyncIterator[bytes]:
            try:
                async for chunk in events:
                    out = relay.feed(chunk)
                    if relay.done:  # the answer is whole: billed before its last event leaves
                        await self._durable(settle())
                    for event in out:
                        yield event
                if not relay.done and relay.error is None:
                    raise TargetFailed("the stream ended before [DONE]", "truncated")
            except asyncio.CancelledError:
                outcome.status = "cancelled"
                raise
            except (TargetFailed, GenAIError) as error:
                outcome.status = "upstream_error"
                self.metrics.upstream_errors.labels(target.name, "mid_stream").inc()
                await self._durable(settle())
                yield error_event(error, call)
            finally:
                with contextlib.suppress(BaseException):
                    await events.aclose()
                settle()
                if outcome.status == "ok":
                    if cache is not None:
                        await cache.store(call, as_response(relay, call))
                    self._maybe_shadow(call, spec, target, relay.raw_text)

        response = StreamingResponse(
            body(),
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )
        self._headers(response, call, outcome, started)
        self.metrics.requests.labels(call.project, call.deployment, call.endpoint, "200").inc()
        return response

    # ------------------------------------------------------------ bookkeeping

    def _finish(
        self,
        call: GatewayRequest,
        caller: Caller,
        outcome: Outcome,
        started: float,
        response: Response,
        status: int,
    ) -> int:
        """Headers, metrics and the ledger row of an answer; the row's ledger ticket."""
        self._headers(response, call, outcome, started)
        self.metrics.requests.labels(
            call.project, call.deployment, call.endpoint, str(status)
        ).inc()
        return self._record(call, caller, outcome, started)

    async def _durable(self, ticket: int) -> None:
        """Wait until a ledger row is on disk (the journal's fsync), if it is not yet."""
        if self.ledger.must_wait(ticket):
            await self.ledger.durable(ticket)

    def _headers(
        self, response: Response, call: GatewayRequest, outcome: Outcome, started: float
    ) -> None:
        total = time.perf_counter() - started
        overhead = max(0.0, total - outcome.upstream_s)
        response.headers["x-request-id"] = call.request_id
        response.headers["x-genai-overhead-ms"] = f"{overhead * 1000:.2f}"
        if self.stages.cache is not None:
            response.headers["x-genai-cache"] = "hit" if outcome.cache_hit else "miss"
        self.metrics.latency.labels(call.endpoint).observe(total)
        self.metrics.overhead.observe(overhead)

    def _record(
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
        ticket = self.ledger.add(
            UsageRow(caller.project_id, event, caller.principal.label, caller.principal.key_id)
        )
        self.metrics.ledger_pending.set(self.ledger.pending)
        self.metrics.tokens.labels(call.project, "prompt").inc(outcome.prompt_tokens)
        self.metrics.tokens.labels(call.project, "completion").inc(outcome.completion_tokens)
        if not outcome.cache_hit and outcome.status == "ok":
            self._remember(call, outcome)
            task = asyncio.ensure_future(
                self.quota.record_spend(
                    caller.project_id,
                    tokens=outcome.prompt_tokens + outcome.completion_tokens,
                    cost_usd=outcome.cost_usd,
                )
            )
            task.add_done_callback(log_failure)
        if access_enabled():
            access_log(access_record(call, outcome, latency_ms))
        return ticket

    def _remember(self, call: GatewayRequest, outcome: Outcome) -> None:
        self.recent[call.request_id] = (
            call.project_id,
            call.deployment,
            outcome.target,
            outcome.cost_usd,
        )
        if len(self.recent) > self.options.max_recent:  # the oldest tenth goes
            for key in list(self.recent)[: max(1, self.options.max_recent // 10)]:
                del self.recent[key]

    def _refuse(
        self,
        error: GenAIError,
        rid: str,
        endpoint: str,
        call: GatewayRequest | None,
        outcome: Outcome,
        started: float,
    ) -> Response:
        status = http_status(error)
        if isinstance(error, BackendError) and error.status in (502, 503, 504):
            status = error.status
        response = Response(
            orjson.dumps(error_body(error)), status_code=status, media_type="application/json"
        )
        response.headers["x-request-id"] = rid
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            response.headers["retry-after"] = str(max(1, int(retry_after + 0.999)))
        project = call.project if call else ""
        self.metrics.requests.labels(
            project, call.deployment if call else "", endpoint, str(status)
        ).inc()
        if call is not None:
            outcome.status = outcome.status if outcome.status != "ok" else status_word(status)
            self._record(call, caller_of(call), outcome, started)
        else:
            access_log(
                {"request_id": rid, "endpoint": endpoint, "status": status, "error": error.code}
            )
        return response

    def _maybe_shadow(
        self, call: GatewayRequest, spec: DeploymentSpec, primary: TargetSpec, text: str
    ) -> None:
        shadow = spec.shadow
        if shadow is None or self.rng.random() >= shadow.sample:
            return
        if len(self._shadows) >= self.options.max_shadow_in_flight:
            self.metrics.shadow.labels("dropped").inc()
            return
        from genai.gateway._shadow import run_shadow

        task = asyncio.ensure_future(
            run_shadow(self, call, shadow.target, spec, primary.name, text)
        )
        self._shadows.add(task)
        task.add_done_callback(self._shadows.discard)


def _note_for_stages(call: GatewayRequest, route: Route, outcome: Outcome) -> None:
    """What stages may read of the gateway's own state: the deployment's revision (a new
    revision may route to another model: the cache partitions by it) and the request's
    outcome (what the answer cost, by the time a cache stage stores it)."""
    call.extra["deployment_revision"] = route.revision
    call.extra["outcome"] = outcome
