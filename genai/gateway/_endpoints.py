"""The gateway's other ``/v1`` endpoints: embeddings, models and feedback."""

from __future__ import annotations

import asyncio
import base64
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response

from genai.errors import BackendError, NotFoundError, ValidationError
from genai.gateway._checks import check_request
from genai.gateway._http import bearer, json_body
from genai.gateway._spec import DeploymentSpec
from genai.gateway._stages import CacheFeedback, GatewayRequest
from genai.gateway._targets import TargetCall, TargetFailed
from genai.store import _schema as t
from genai.tenancy import Action, Resource, UsageEvent, authorize

if TYPE_CHECKING:
    from genai.gateway._gateway import Gateway
    from genai.models import Embedder

__all__ = ["Endpoints"]


class Endpoints:
    def __init__(
        self, gateway: Gateway, *, embedder: Embedder | None, embedding_model: str
    ) -> None:
        self.gateway = gateway
        self.embedder = embedder
        self.embedding_model = embedding_model

    async def models(self, http: Request) -> Response:

        caller = await self.gateway.callers.resolve(bearer(http))
        routes = await self.gateway.routes.all(caller.project_id)
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

        g = self.gateway
        started = time.perf_counter()
        caller = await g.callers.resolve(bearer(http))
        body = await json_body(http, g.options.max_body_bytes)
        model = check_request("embeddings", body)
        authorize(
            caller.principal, Action.MODEL_INVOKE, Resource("deployment", model, caller.project_id)
        )
        texts = [body["input"]] if isinstance(body["input"], str) else body["input"]
        if not all(isinstance(x, str) for x in texts):
            raise ValidationError(
                "'input' must be text (token arrays are not supported)", field="input"
            )
        local = self.embedder is not None and model == self.embedding_model
        if not local:
            route = await g.routes.get(caller.project_id, model)
            spec = route.usable()
            if spec.kind != "embedding":
                raise ValidationError(
                    f"deployment {model!r} is not an embedding deployment", field="model"
                )
        await g.quota.admit(caller.project_id, caller.project, caller.limits)
        if local:
            payload, tokens = await asyncio.to_thread(self._embed_locally, texts, body)
        else:
            payload = await self._embed_upstream(caller, body, model, spec)
            tokens = int((payload.get("usage") or {}).get("prompt_tokens") or 0)
        latency = (time.perf_counter() - started) * 1000
        event = UsageEvent(
            model=model,
            target="local" if local else spec.targets[0].name,
            prompt_tokens=tokens,
            latency_ms=latency,
        )
        from genai.gateway._ledger import UsageRow

        g.ledger.add(
            UsageRow(caller.project_id, event, caller.principal.label, caller.principal.key_id)
        )
        await g.quota.record_spend(caller.project_id, tokens=tokens, cost_usd=0.0)
        return Response(orjson.dumps(payload), media_type="application/json")

    def _embed_locally(self, texts: list[str], body: dict[str, Any]) -> tuple[dict[str, Any], int]:
        assert self.embedder is not None
        vectors = np.asarray(self.embedder.embed(texts), dtype=np.float32)
        dims = body.get("dimensions")
        if dims is not None:
            if not isinstance(dims, int) or not 1 <= dims <= vectors.shape[1]:
                raise ValidationError(
                    f"'dimensions' must be 1 to {vectors.shape[1]}", field="dimensions"
                )
            vectors = vectors[:, :dims]
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-12
        as_base64 = body.get("encoding_format") == "base64"
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": base64.b64encode(v.tobytes()).decode() if as_base64 else v.tolist(),
            }
            for i, v in enumerate(vectors)
        ]
        count = getattr(self.embedder, "count_tokens", None)
        tokens = sum(count(x) for x in texts) if count else sum(len(x.split()) for x in texts)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return {
            "object": "list",
            "data": data,
            "model": self.embedding_model,
            "usage": usage,
        }, tokens

    async def _embed_upstream(
        self, caller: Any, body: dict[str, Any], model: str, spec: DeploymentSpec
    ) -> dict[str, Any]:
        request = GatewayRequest(
            request_id="",
            endpoint="embeddings",
            principal=caller.principal,
            project_id=caller.project_id,
            project=caller.project,
            project_options=caller.options,
            body=body,
            deployment=model,
        )
        try:
            return await self.gateway.targets.complete(TargetCall(spec.targets[0], request, spec))
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
        caller = await g.callers.resolve(bearer(http))
        body = await json_body(http, 64 << 10)
        rid = _request_id(body)
        authorize(
            caller.principal, Action.MODEL_INVOKE, Resource("response", rid, caller.project_id)
        )
        score = _score(body)
        seen = g.recent.get(rid)
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
        route = (await g.routes.all(caller.project_id)).get(deployment)
        if route is not None and route.spec is not None and route.spec.policy == "bandit":
            bandit = await g.bandit(caller.project_id, deployment, route.spec)
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


def _request_id(body: Any) -> str:
    if not isinstance(body, dict):
        raise ValidationError("the feedback body must be a JSON object")
    value = body.get("response_id") or body.get("request_id")
    if not isinstance(value, str) or not value:
        raise ValidationError(
            "give the 'response_id' of the answer (or its x-request-id)", field="response_id"
        )
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
