"""The request path of the gateway: key → project → deployment → quota → stages → target
(with retries, fallbacks and circuit breakers) → stages → client, and the ledger row."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from genai.errors import (
    BackendError,
    GenAIError,
    NotFoundError,
)
from genai.gateway._admission import Admission, Slot, cpu_pool
from genai.gateway._bandits import Bandits
from genai.gateway._books import Books
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
from genai.gateway._ledger import LedgerWriter
from genai.gateway._observe import GatewayMetrics, span
from genai.gateway._options import GatewayOptions, Stages
from genai.gateway._outcome import (
    Outcome,
    account,
)
from genai.gateway._spec import DeploymentSpec, TargetSpec
from genai.gateway._stages import (
    GatewayRequest,
)
from genai.gateway._streaming import SseRelay, replay_events
from genai.gateway._targets import TargetCall, TargetFailed, Targets
from genai.gateway._traffic import Circuits, choose, plan_attempts
from genai.pool import FairPool
from genai.store import Store
from genai.tenancy import Action, AsyncQuotaEnforcer, Resource, authorize

__all__ = ["Gateway"]

log = logging.getLogger("genai.gateway")


class Gateway:
    """The request path of every ``/v1`` model call, and what it keeps between calls.

    Built from its collaborators (``create_gateway`` wires them from settings): the
    ``store`` (keys, deployments, the ledger's table), the ``quota`` enforcer (rate limits
    and budgets on shared counters), the ``stages`` that ``apps/`` plugs in, the
    ``options``, the ``metrics`` it reports to, the ledger's ``journal``, the ``circuits``
    (breakers on an injectable clock), an ``rng`` (traffic splits, backoff jitter), the
    ``clock`` its caches expire on (keys, routes, upstream credentials) and the ``sleep``
    of its retry backoff (a test passes a :class:`genai.testing.ManualClock` and its
    ``sleep``).

    Other parts of the gateway read what they need through the read-only properties below
    and act through its methods (:meth:`caller`, :meth:`route`, :meth:`invalidate`) and
    its :attr:`books` (ledger rows, refusals); none of its state is assigned
    from outside. :meth:`start` and :meth:`close` bracket its life (the app's lifespan).
    """

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
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._options = options or GatewayOptions()
        self._sleep = sleep
        self._store = store
        self._quota = quota
        self._stages = stages or Stages()
        self._metrics = metrics or GatewayMetrics()
        self._callers = CallerCache(store, ttl_s=self._options.key_cache_ttl_s, clock=clock)
        self._routes = RouteTable(store, ttl_s=self._options.route_cache_ttl_s, clock=clock)
        self._ledger = LedgerWriter(
            store, interval_s=self._options.ledger_interval_s, journal=journal
        )
        self._targets = Targets(
            self._stages.targets,
            credentials=UpstreamCredentials(
                store,
                sealer=self._options.secrets,
                allowlist=self._options.secret_env_allowlist,
                ttl_s=self._options.key_cache_ttl_s,
                clock=clock,
            ),
            inprocess=self._options.inprocess,
            embedder=self._stages.embedder,
        )
        self._pool = self._stages.pool or cpu_pool(self._options)
        self._admission = Admission(self._options, self._pool)
        self._circuits = circuits if circuits is not None else Circuits()
        self._bandits = Bandits(store)
        self._books = Books(
            ledger=self._ledger,
            metrics=self._metrics,
            quota=self._quota,
            cache_header=self._stages.cache is not None,
            max_recent=self._options.max_recent,
        )
        self._rng = rng or random.Random()
        self._shadows: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------ what others read

    @property
    def options(self) -> GatewayOptions:
        return self._options

    @property
    def store(self) -> Store:
        return self._store

    @property
    def quota(self) -> AsyncQuotaEnforcer:
        return self._quota

    @property
    def stages(self) -> Stages:
        return self._stages

    @property
    def metrics(self) -> GatewayMetrics:
        return self._metrics

    @property
    def ledger(self) -> LedgerWriter:
        """The usage ledger's writer (rows batched in the background, journaled first)."""
        return self._ledger

    @property
    def targets(self) -> Targets:
        """The deployments' targets: in-process backends, upstreams, target stages."""
        return self._targets

    @property
    def pool(self) -> FairPool:
        """The fair CPU pool that request work (DLP, cache, embeddings) runs in."""
        return self._pool

    @property
    def admission(self) -> Admission:
        return self._admission

    @property
    def circuits(self) -> Circuits:
        return self._circuits

    @property
    def bandits(self) -> Bandits:
        return self._bandits

    # ------------------------------------------------------------ what others call

    async def caller(self, key: str) -> Caller:
        """The caller an API key is (cached), or an AuthenticationError."""
        return await self._callers.resolve(key)

    async def route(self, project_id: int, deployment: str) -> Route:
        """The newest revision of one of the project's deployments, or a NotFoundError."""
        return await self._routes.get(project_id, deployment)

    async def routes(self, project_id: int) -> dict[str, Route]:
        """The newest revision of every deployment of the project, by name."""
        return await self._routes.all(project_id)

    def invalidate(
        self, project_id: int | None = None, *, callers: bool = True, routes: bool = True
    ) -> None:
        """Forget the cached callers (keys, members, quotas) and routes (deployments) of a
        project, or of all: a change takes effect in this process with the next request."""
        if callers:
            self._callers.invalidate(project_id=project_id)
        if routes:
            self._routes.invalidate(project_id)

    @property
    def shadows_in_flight(self) -> int:
        """Shadow comparisons still running in the background."""
        return len(self._shadows)

    @property
    def books(self) -> Books:
        """Its bookkeeping: ledger rows, metrics, spend, refusals, recent answers."""
        return self._books

    async def start(self) -> None:
        await self._targets.start()
        await asyncio.to_thread(self._ledger.start)  # replays what a dead process journaled
        if self._options.prewarm:
            for target in await asyncio.to_thread(self._local_targets):
                try:
                    await self._targets.warm(target)
                except Exception as error:  # a broken target fails its requests, not the gateway
                    log.warning("could not start target %s: %s", target.name, error)

    def _local_targets(self) -> list[TargetSpec]:
        """The in-process targets of every deployment's newest revision."""
        from sqlalchemy import select

        from genai.gateway._spec import parse_spec
        from genai.store import schema as t

        with self._store.session() as s:
            specs = s.scalars(select(t.Deployment.spec)).all()
        found: dict[str, TargetSpec] = {}
        for raw in specs:
            try:
                spec = parse_spec(raw)
            except GenAIError:
                continue
            for target in [*spec.targets, *spec.fallbacks]:
                if target.backend and target.backend not in self._stages.targets:
                    found.setdefault(f"{target.backend}{sorted(target.options.items())}", target)
        return list(found.values())

    async def close(self) -> None:
        for task in list(self._shadows):
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(task, timeout=5)
        await self._targets.close()
        self._pool.close()  # queued CPU jobs are cancelled; running ones finish
        await asyncio.to_thread(self._ledger.close)

    # ------------------------------------------------------------ entry

    async def handle(self, http: Request, endpoint: str) -> Response:
        """Answer one chat or completion request (every refusal in OpenAI's error shape).
        A client that leaves before its answer cancels the work still to do (its CPU jobs
        not started, its upstream call) and gets a ``cancelled`` ledger row."""
        started = time.perf_counter()
        rid = os.urandom(12).hex()
        try:
            caller = await self._callers.resolve(bearer(http))
            body = await json_body(http, self._options.max_body_bytes)
        except GenAIError as error:
            return self._books.refuse(error, rid, endpoint, None, Outcome(), started)
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
            route = await self._routes.get(caller.project_id, deployment)
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
                credential=bearer(http),
                headers={
                    k: v
                    for k, v in http.headers.items()
                    if k.startswith("x-genai-") or k == spec.sticky_header.lower()
                },
            )
            if self._stages.request:
                call.notes.unchecked = True  # until every request stage has run (logs)
            # after the request is known, so that a refusal has its ledger row too
            slot = self._admission.enter(call, caller.limits)  # size (400), in progress (429)
            await self._quota.admit(caller.project_id, caller.project, caller.limits)
            with span(
                "gateway.request",
                {
                    "genai.request_id": rid,
                    "genai.project": caller.project,
                    "genai.deployment": deployment,
                },
            ):
                for stage in self._stages.request:
                    await stage.before(call)
                call.notes.unchecked = False
                if call.stream:
                    stream = await self._stream(call, caller, route, spec, outcome, started)
                    return slot.until_sent(stream)  # the slot is held until it is sent
                payload = await self._complete(call, caller, route, spec, outcome)
            response = Response(orjson.dumps(payload), media_type="application/json")
            await self._books.answered_ok(call, caller, outcome, started, response)
            return response
        except GenAIError as error:
            return self._books.refuse(error, rid, endpoint, call, outcome, started)
        except asyncio.CancelledError:  # the client left (or the server is stopping)
            if call is not None and not outcome.recorded:
                outcome.status = "cancelled"
                self._books.record(call, caller, outcome, started)
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
        hit = await self._cached(call, route, spec, outcome)
        if hit is not None:
            return hit
        target, payload = await self._attempts(call, spec, outcome, self._targets.complete)
        account(outcome, target, payload.get("usage"))
        call.notes.cost_usd = outcome.cost_usd
        payload = with_id(payload, call)
        cache = self._stages.cache
        # the cache keeps the target's own answer (response stages run again on a hit, and
        # one may restore personal data the cache must not hold); so does a shadow compare
        keep = self._stages.response and (cache is not None or spec.shadow is not None)
        raw = orjson.loads(orjson.dumps(payload)) if keep else payload
        payload = await self._after(call, payload)
        if cache is not None:
            await cache.store(call, raw)
        self._maybe_shadow(call, spec, target, text_of(raw))
        return payload

    async def _cached(
        self, call: GatewayRequest, route: Route, spec: DeploymentSpec, outcome: Outcome
    ) -> dict[str, Any] | None:
        """Before any target is called: note what the stages need to know, let the targets
        prepare (they note what their answer depends on), then ask the cache. A hit's
        answer, through the response stages; None on a miss or without a cache."""
        call.notes.deployment_revision = route.revision
        await self._targets.prepare(call, spec)
        cache = self._stages.cache
        if cache is None:
            return None
        hit = await cache.lookup(call)
        self._metrics.cache.labels(call.project, "hit" if hit else "miss").inc()
        if hit is None:
            return None
        outcome.cache_hit, outcome.status, outcome.target = True, "ok", "cache"
        return await self._after(call, with_id(dict(hit.response), call))

    async def _after(self, call: GatewayRequest, payload: dict[str, Any]) -> dict[str, Any]:
        for stage in reversed(self._stages.response):
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
            bandit = await self._bandits.get(call.project_id, call.deployment, spec)
        chosen = choose(
            spec,
            project=call.project,
            deployment=call.deployment,
            sticky_value=call.headers.get(spec.sticky_header.lower()),
            bandit=bandit,
            rng=self._rng,
        )
        failures: list[str] = []
        waits: list[float] = []
        for target in plan_attempts(spec, chosen):
            circuit = self._circuits.get(target, spec)
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
                    self._metrics.upstream_errors.labels(target.name, error.reason).inc()
                    failures.append(f"{target.name}: {error.message}")
                    if error.retry_after:
                        waits.append(error.retry_after)
                    if attempt < spec.retries and circuit.state != "open":
                        await self._sleep(
                            backoff(spec.backoff_s, attempt, error.retry_after, self._rng)
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
                self._metrics.upstream.labels(target.name).observe(elapsed)
                return target, result
            self._metrics.set_circuits(self._circuits.states())
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
        hit = await self._cached(call, route, spec, outcome)
        if hit is not None:
            events = replay_events(hit, include_usage=wants_usage)
            response = StreamingResponse(iterate(events), media_type="text/event-stream")
            account(outcome, None, hit.get("usage"))
            await self._books.answered_ok(call, caller, outcome, started, response)
            return response
        cache = self._stages.cache
        call.body["stream_options"] = {
            **(call.body.get("stream_options") or {}),
            "include_usage": True,
        }
        target, events = await self._attempts(call, spec, outcome, self._targets.stream)

        def filters() -> list[Any]:  # a chain per choice of the answer
            made = (s.stream(call) for s in reversed(self._stages.response))
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
                call.notes.cost_usd = outcome.cost_usd
                recorded.append(self._books.record(call, caller, outcome, started))
            return recorded[0]

        async def body() -> AsyncIterator[bytes]:
            try:
                async for chunk in events:
                    out = relay.feed(chunk)
                    if relay.done:  # the answer is whole: billed before its last event leaves
                        await self._books.durable(settle())
                    for event in out:
                        yield event
                if not relay.done and relay.error is None:
                    raise TargetFailed("the stream ended before [DONE]", "truncated")
            except asyncio.CancelledError:
                outcome.status = "cancelled"
                raise
            except (TargetFailed, GenAIError) as error:
                outcome.status = "upstream_error"
                self._metrics.upstream_errors.labels(target.name, "mid_stream").inc()
                await self._books.durable(settle())
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
        self._books.headers(response, call, outcome, started)
        self._metrics.requests.labels(call.project, call.deployment, call.endpoint, "200").inc()
        return response

    def _maybe_shadow(
        self, call: GatewayRequest, spec: DeploymentSpec, primary: TargetSpec, text: str
    ) -> None:
        shadow = spec.shadow
        if shadow is None or self._rng.random() >= shadow.sample:
            return
        if len(self._shadows) >= self._options.max_shadow_in_flight:
            self._metrics.shadow.labels("dropped").inc()
            return
        from genai.gateway._shadow import run_shadow

        task = asyncio.ensure_future(
            run_shadow(self, call, shadow.target, spec, primary.name, text)
        )
        self._shadows.add(task)
        task.add_done_callback(self._shadows.discard)

