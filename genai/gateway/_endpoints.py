"""The gateway's other ``/v1`` endpoints: embeddings, models and feedback."""

from __future__ import annotations

import asyncio
import base64
import os
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response

from genai.errors import BackendError, GenAIError, NotFoundError, ValidationError
from genai.gateway._admission import check_embedding_tokens
from genai.gateway._cache import Caller
from genai.gateway._checks import check_feedback, check_request
from genai.gateway._http import ClientGone, bearer, json_body, unless_gone
from genai.gateway._outcome import Outcome
from genai.gateway._spec import DeploymentSpec
from genai.gateway._stages import CacheFeedback, GatewayRequest
from genai.gateway._targets import TargetCall, TargetFailed
from genai.store import schema as t
from genai.tenancy import Action, Resource, UsageEvent, authorize

if TYPE_CHECKING:
    from genai.gateway._gateway import Gateway
    from genai.models import Embedder

__all__ = ["Endpoints"]

COUNT_CHARS = 32_768  # characters of text one counting job tokenizes (~20 ms on a busy CPU)


class Endpoints:
    def __init__(
        self, gateway: Gateway, *, embedder: Embedder | None, embedding_model: str
    ) -> None:
        self.gateway = gateway
        self.embedder = embedder
        self.embedding_model = embedding_model

    async def models(self, http: Request) -> Response:

        caller = await self.gateway.caller(bearer(http))
        routes = await self.gateway.routes(caller.project_id)
        created = int(time.time())
        ids = []
        for name, route in sorted(routes.items()):
            ids.append(name)
            ids.extend(f"{name}:{a}" for a in (route.spec.adapters if route.spec else []))
        if self.embedder is not None:
            ids.append(self.embedding_model)
        data = [
            {"id": i, "object": "model", "created": created, "owned_by": caller.project}
            for i in ids
        ]
        return Response(
            orjson.dumps({"object": "list", "data": data}), media_type="application/json"
        )

    async def embeddings(self, http: Request) -> Response:
        """OpenAI's embeddings: with the gateway's own model (``settings.embedding_model``)
        in the fair CPU pool, or through an embedding deployment's upstream. Admitted as a
        chat request is (size limits, the project's requests in progress, its quota); a
        refusal once the caller and model are known has its ledger row. A client that
        disconnects first cancels the work: its jobs not started yet never run."""
        g = self.gateway
        started = time.perf_counter()
        caller = await g.caller(bearer(http))
        body = await json_body(http, g.options.max_body_bytes)
        model = check_request("embeddings", body)
        authorize(
            caller.principal, Action.MODEL_INVOKE, Resource("deployment", model, caller.project_id)
        )
        local = self.embedder is not None and model == self.embedding_model
        spec = None if local else await self._embedding_spec(caller, model)
        texts = _texts(body["input"], self.embedder if local else None)
        call = GatewayRequest(
            request_id=os.urandom(12).hex(),
            endpoint="embeddings",
            principal=caller.principal,
            project_id=caller.project_id,
            project=caller.project,
            project_options=caller.options,
            body=body,
            deployment=model,
        )
        slot = None
        try:
            slot = g.admission.enter(call, caller.limits)  # size (400), in progress (429)
            return await unless_gone(http, self._embed(call, caller, texts, spec, started))
        except ClientGone:
            g.books.record(call, caller, Outcome(status="cancelled"), started)
            raise
        except GenAIError as error:
            return g.books.refuse(error, call.request_id, "embeddings", call, Outcome(), started)
        finally:
            if slot is not None:
                slot.leave()

    async def _embedding_spec(self, caller: Caller, model: str) -> DeploymentSpec:
        spec = (await self.gateway.route(caller.project_id, model)).usable()
        if spec.kind != "embedding":
            raise ValidationError(
                f"deployment {model!r} is not an embedding deployment", field="model"
            )
        return spec

    async def _embed(
        self,
        call: GatewayRequest,
        caller: Caller,
        texts: list[str],
        spec: DeploymentSpec | None,
        started: float,
    ) -> Response:
        """The answer of an admitted request: the local model's (``spec`` None) or the
        deployment's upstream's, with its ledger row and spend."""
        g = self.gateway
        model = call.deployment
        await g.quota.admit(caller.project_id, caller.project, caller.limits)
        if spec is None:
            raw, tokens = await self._embed_locally(call, texts)
        else:
            payload = await self._embed_upstream(call, spec)
            tokens = int((payload.get("usage") or {}).get("prompt_tokens") or 0)
            raw = orjson.dumps(payload)
        latency = (time.perf_counter() - started) * 1000
        event = UsageEvent(
            ts=datetime.now(UTC),
            model=model,
            target="local" if spec is None else spec.targets[0].name,
            prompt_tokens=tokens,
            latency_ms=latency,
            request_id=call.request_id,
        )
        from genai.gateway._ledger import UsageRow

        ticket = g.ledger.add(
            UsageRow(caller.project_id, event, caller.principal.label, caller.principal.key_id)
        )
        await g.quota.record_spend(caller.project_id, tokens=tokens, cost_usd=0.0)
        await g.ledger.durable(ticket)  # billed before the answer leaves
        g.metrics.requests.labels(call.project, model, "embeddings", "200").inc()
        return Response(
            raw, media_type="application/json", headers={"x-request-id": call.request_id}
        )

    async def _embed_locally(self, call: GatewayRequest, texts: list[str]) -> tuple[bytes, int]:
        """Counted (the token limits), then embedded in small batches (``embedding_batch``
        texts, ``embedding_batch_tokens`` padded tokens), each one job of the project's in
        the fair CPU pool: a large request takes its turns between other projects' jobs
        instead of holding a worker for minutes. Only the first job may be refused (the
        project's queue is full); the others belong to a request already admitted."""
        g = self.gateway
        counts: list[int] = []
        for start, end in _by_length(texts, COUNT_CHARS):  # counting is work too: in turns
            got, width, longest = await g.pool.run(
                call.project, self._measure, texts[start:end], bounded=not counts
            )
            counts.extend(got)
            check_embedding_tokens(counts, g.options)  # an oversized request stops early
        dims = _dimensions(call.body.get("dimensions"), width)
        as_base64 = call.body.get("encoding_format") == "base64"
        parts = []
        for start, end in batches(
            counts,
            tokens=g.options.embedding_batch_tokens,
            texts=g.options.embedding_batch,
            longest=longest,
        ):
            parts.append(
                await g.pool.run(
                    call.project,
                    self._encode,
                    texts[start:end],
                    start,
                    dims,
                    as_base64,
                    bounded=False,
                )
            )
        tokens = sum(counts)
        usage = orjson.dumps({"prompt_tokens": tokens, "total_tokens": tokens})
        model = orjson.dumps(self.embedding_model)
        raw = b'{"object":"list","data":[%b],"model":%b,"usage":%b}' % (
            b",".join(parts),
            model,
            usage,
        )
        return raw, tokens

    def _measure(self, texts: list[str]) -> tuple[list[int], int, int]:
        """Each text's tokens (the embedder's tokenizer, else words), the vectors' width,
        and the most tokens of a text the model reads (it truncates the rest)."""
        assert self.embedder is not None
        count = getattr(self.embedder, "count_tokens", None)
        counts = [int(count(x)) for x in texts] if count else [len(x.split()) for x in texts]
        longest = int(getattr(self.embedder, "max_seq_length", 512))
        return counts, int(self.embedder.dimension), longest

    def _encode(self, texts: list[str], offset: int, dims: int | None, as_base64: bool) -> bytes:
        """One batch's ``data`` items, as JSON (without the brackets of the list)."""
        assert self.embedder is not None
        vectors = np.asarray(self.embedder.embed(texts), dtype=np.float32)
        if dims is not None:
            vectors = vectors[:, :dims]
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-12
        items = [
            {
                "object": "embedding",
                "index": offset + i,
                "embedding": base64.b64encode(v.tobytes()).decode() if as_base64 else v.tolist(),
            }
            for i, v in enumerate(vectors)
        ]
        return orjson.dumps(items)[1:-1]

    async def _embed_upstream(self, call: GatewayRequest, spec: DeploymentSpec) -> dict[str, Any]:
        model = call.deployment
        try:
            return await self.gateway.targets.complete(TargetCall(spec.targets[0], call, spec))
        except TargetFailed as error:
            raise BackendError(
                f"deployment {model!r}: {error.message}",
                backend="gateway",
                retryable=True,
                retry_after=error.retry_after,
            ) from None

    async def feedback(self, http: Request) -> Response:
        """``{"response_id": ..., "score": 0..1}`` (or ``"rating": "up" | "down"``)."""

        g = self.gateway
        caller = await g.caller(bearer(http))
        body = await json_body(http, 64 << 10)
        check_feedback(body)
        rid = _request_id(body)
        authorize(
            caller.principal, Action.MODEL_INVOKE, Resource("response", rid, caller.project_id)
        )
        score = _score(body)
        seen = g.books.answered(rid)
        if seen is None or seen[0] != caller.project_id:
            seen = await asyncio.to_thread(self._find, caller.project_id, rid)
        _, deployment, target, cost = seen
        comment = str(body.get("comment") or "")[:2000]
        g.ledger.add_row(
            t.Feedback,
            {
                "project_id": caller.project_id,
                "request_id": rid,
                "deployment": deployment,
                "target": target,
                "score": score,
                "comment": comment,
                "principal": caller.principal.label,
            },
        )
        cache = g.stages.cache
        if isinstance(cache, CacheFeedback):  # a wrong cached answer leaves the cache
            await cache.feedback(caller.project_id, rid, score)
        route = (await g.routes(caller.project_id)).get(deployment)
        if route is not None and route.spec is not None and route.spec.policy == "bandit":
            bandit = await g.bandits.get(caller.project_id, deployment, route.spec)
            bandit.reward(target, score - route.spec.bandit.cost_weight * cost)
        return Response(
            orjson.dumps({"object": "feedback", "request_id": rid, "recorded": True}),
            media_type="application/json",
        )

    def _find(self, project_id: int, rid: str) -> tuple[int, str, str, float]:
        self.gateway.ledger.flush(timeout_s=2.0)
        with self.gateway.store.session() as s:
            row = s.scalars(
                select(t.UsageRecord).where(
                    t.UsageRecord.project_id == project_id, t.UsageRecord.request_id == rid
                )
            ).first()
        if row is None:
            raise NotFoundError(f"no response {rid!r} in this project")
        return project_id, row.model, row.target, row.cost_usd


def _by_length(texts: list[str], chars: int) -> list[tuple[int, int]]:
    """Consecutive runs ``(start, end)`` of texts of at most ``chars`` characters in all
    (or one longer text alone)."""
    runs: list[tuple[int, int]] = []
    start, size = 0, 0
    for i, text in enumerate(texts):
        if i > start and size + len(text) > chars:
            runs.append((start, i))
            start, size = i, 0
        size += len(text)
    if texts:
        runs.append((start, len(texts)))
    return runs


def batches(counts: list[int], *, tokens: int, texts: int, longest: int) -> list[tuple[int, int]]:
    """Consecutive runs ``(start, end)`` of texts to embed together: at most ``texts`` of
    them, and at most ``tokens`` once padded to the run's longest text (a text counts its
    tokens up to ``longest``, the model's limit, plus two special tokens). A text over the
    budget alone is a run of its own."""
    runs: list[tuple[int, int]] = []
    start, widest = 0, 0
    for i, count in enumerate(counts):
        size = min(count, longest) + 2
        wider = max(widest, size)
        if i > start and ((i - start + 1) * wider > tokens or i - start >= texts):
            runs.append((start, i))
            start, wider = i, size
        widest = wider
    if counts:
        runs.append((start, len(counts)))
    return runs


def _dimensions(value: Any, width: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= width:
        raise ValidationError(f"'dimensions' must be 1 to {width}", field="dimensions")
    return value


def _texts(given: Any, embedder: Embedder | None) -> list[str]:
    """The texts of an embeddings ``input``: text, texts, or token arrays (ids of the
    embedding model's tokenizer, decoded by the gateway's own model; a deployment's upstream
    gets them as they are, and the texts here only count for the size limits)."""
    if isinstance(given, str):
        return [given]
    if given and all(isinstance(x, int) for x in given):
        given = [given]
    if all(isinstance(x, str) for x in given):
        return list(given)
    if embedder is None:
        return [" ".join(map(str, ids)) for ids in given]  # relayed: counted, not read
    decode = getattr(embedder, "decode", None)
    if decode is None:
        raise ValidationError(
            f"the embedding model {embedder.model_name} does not take token arrays: send text",
            field="input",
        )
    return [str(decode(ids)) for ids in given]


def _request_id(body: Any) -> str:
    if not isinstance(body, dict):
        raise ValidationError("the feedback body must be a JSON object")
    value = body.get("response_id") or body.get("request_id")
    if not isinstance(value, str) or not value:
        raise ValidationError(
            "give the 'response_id' of the answer (or its x-request-id)", field="response_id"
        )
    if value.startswith("resp_"):  # a Responses API answer (resp_<request id>)
        return value.removeprefix("resp_")
    return value.split("-", 1)[1] if value.startswith(("chatcmpl-", "cmpl-")) else value


def _score(body: dict[str, Any]) -> float:
    if "score" in body:
        score = body["score"]
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0 <= score <= 1:
            raise ValidationError(
                "'score' must be a number from 0 (bad) to 1 (good)", field="score"
            )
        return float(score)
    rating = str(body.get("rating", "")).lower()
    if rating in ("up", "good", "thumbs_up", "positive"):
        return 1.0
    if rating in ("down", "bad", "thumbs_down", "negative"):
        return 0.0
    raise ValidationError("give a 'score' from 0 to 1, or a 'rating' of up or down", field="score")
