"""The gateway's DLP stages: pseudonymise before the model call, restore after it.

:class:`DlpRequestStage` finds personal data in every text of a request (chat messages of
all roles, content-part lists, tool results, tool-call arguments, completion prompts,
embedding inputs, ``user``) and applies the project's policy (``dlp`` in the project's
options, else ``GENAI_DLP_POLICY``; no policy: DLP off). Pseudonyms are kept in the vault
session named by the ``x-genai-session`` header (per project and principal), or in a
session of the request alone. Detection runs as the project's job in the gateway's fair CPU
pool (or in the stage's own threads when it has none), within the policy's ``timeout_s``
(its wait in the pool included); when it fails or times out the request is refused (503)
unless the policy says ``fail_open``. When the project's queue in the pool is full the
request is refused at once (429; 503 when the whole pool is), whatever the policy says.

:class:`DlpResponseStage` restores the originals: in whole answers (content and tool-call
arguments) and, through :class:`~genai.dlp.RestoringFilter`, in streams.

A refused request keeps no raw text in its body: blocked values are redacted and text
that could not be checked is withheld, so a prompt log of it holds no personal data.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from genai.dlp import (
    WITHHELD,
    Dlp,
    Planned,
    Policy,
    Restorer,
    RestoringFilter,
    blocked,
    check_blocked,
    policy_from_options,
    render,
)
from genai.errors import BackendError, DlpBlocked, GenAIError
from genai.gateway import DlpNote, DlpStatus, GatewayRequest, PerRequest, StreamFilter
from genai.pool import FairPool, PoolOverloaded, QueueFull
from genai.settings import Settings
from genai.store import Store
from genai.store import schema as t

__all__ = ["DlpRequestStage", "DlpResponseStage", "collect_texts", "dlp_stages"]

log = logging.getLogger("genai.gateway.dlp")

WARM_TIMEOUT_S = 120.0  # building a detector (loading a model) is not the request's timeout
MAX_WARM = 4  # detectors a gateway builds at start (each loads its NER model: seconds)
PURGE_EVERY_S = 600.0


# --------------------------------------------------------------------------- texts of a body


@dataclass
class _Texts:
    """The texts of a request body, and how to write new ones back in place."""

    texts: list[str] = field(default_factory=list)
    _slots: list[tuple[Any, Any]] = field(default_factory=list)
    _finish: list[Callable[[], None]] = field(default_factory=list)

    def add(self, holder: Any, key: Any) -> None:
        value = holder[key]
        if isinstance(value, str) and value.strip():
            self.texts.append(value)
            self._slots.append((holder, key))

    def leaves(self, value: Any, holder: Any = None, key: Any = None) -> None:
        """Every string inside ``value`` (dict values and list items, not dict keys)."""
        if isinstance(value, str) and holder is not None:
            self.add(holder, key)
        elif isinstance(value, dict):
            for k in value:
                self.leaves(value[k], value, k)
        elif isinstance(value, list):
            for i in range(len(value)):
                self.leaves(value[i], value, i)

    def json_text(self, holder: dict[str, Any], key: str) -> None:
        """A JSON document in a string (tool-call arguments): its strings, re-encoded after."""
        raw = holder.get(key)
        if not isinstance(raw, str):
            return
        try:
            parsed = json.loads(raw)
        except ValueError:
            self.add(holder, key)  # not JSON (a model's mistake): treated as text
            return
        box = [parsed]
        before = len(self.texts)
        self.leaves(parsed, box, 0)

        def finish() -> None:  # re-encoded only when a value changed
            if box[0] != json.loads(raw):
                holder[key] = json.dumps(box[0], ensure_ascii=False)

        if len(self.texts) > before:
            self._finish.append(finish)

    def write(self, texts: list[str]) -> None:
        for (holder, key), text in zip(self._slots, texts, strict=True):
            holder[key] = text
        for finish in self._finish:
            finish()


def _message(texts: _Texts, message: Any) -> None:
    if not isinstance(message, dict):
        return
    content = message.get("content")
    if isinstance(content, str):
        texts.add(message, "content")
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.add(part, "text")
    for call in message.get("tool_calls") or []:
        if isinstance(call, dict) and isinstance(call.get("function"), dict):
            texts.json_text(call["function"], "arguments")
    if isinstance(message.get("function_call"), dict):
        texts.json_text(message["function_call"], "arguments")


def collect_texts(endpoint: str, body: dict[str, Any]) -> _Texts:
    """The texts a request sends to a model, each with its place in ``body``."""
    texts = _Texts()
    if endpoint == "chat":
        for message in body.get("messages") or []:
            _message(texts, message)
        prediction = body.get("prediction")
        if isinstance(prediction, dict):
            texts.leaves(prediction.get("content"), prediction, "content")
        for key in ("context", "variables", "metadata"):
            if key in body:
                texts.leaves(body[key], body, key)
    elif endpoint == "completions":
        for key in ("prompt", "suffix"):
            if key in body:
                texts.leaves(body[key], body, key)
    elif endpoint == "embeddings" and "input" in body:
        texts.leaves(body["input"], body, "input")
    if isinstance(body.get("user"), str):
        texts.add(body, "user")
    return texts


# --------------------------------------------------------------------------- the stages


@dataclass
class _Result:
    texts: list[str]
    restorer: Restorer
    counts: dict[str, int]
    status: DlpStatus = "protected"
    refusal: DlpBlocked | None = None


class DlpRequestStage:
    """Applies the project's DLP policy to a request (see the module docstring)."""

    name = "dlp"

    def __init__(
        self,
        dlp: Dlp,
        *,
        default_policy: Policy | None = None,
        workers: int = 4,
        after_load: Callable[[], None] | None = None,
        pool: FairPool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.dlp = dlp
        self._clock = clock  # when the vault was last purged
        self._cpu = pool  # detection; building detectors and the vault's purge stay in _pool
        self.default_policy = default_policy
        self.after_load = after_load  # runs (in a worker) once a request built a detector
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="genai-dlp")
        self._policies: OrderedDict[str, Policy | None] = OrderedDict()
        self._last_purge = clock()
        #: each request's pseudonyms → originals, for the response stage to restore
        self.restorers: PerRequest[Restorer] = PerRequest()

    def policy(self, request: GatewayRequest) -> Policy | None:
        """The project's policy (parsed once per distinct option value)."""
        raw = request.project_options.get("dlp")
        key = raw if isinstance(raw, str) else json.dumps(raw, sort_keys=True, default=str)
        if key in self._policies:
            self._policies.move_to_end(key)
            return self._policies[key]
        found = policy_from_options(
            request.project_options, default=self.default_policy, project=request.project
        )
        self._policies[key] = found
        if len(self._policies) > 512:
            self._policies.popitem(last=False)
        return found

    async def before(self, request: GatewayRequest) -> None:
        try:
            policy = self.policy(request)
        except GenAIError:
            _withhold(request)  # a broken policy protects nothing: refuse, as if down
            raise
        if policy is None:  # the common case stays cheap: no walk over the body
            if (
                request.project_options.get("prompt_logging")
                and collect_texts(request.endpoint, request.body).texts
            ):
                await self._log_copy(request)
            return
        texts = collect_texts(request.endpoint, request.body)
        if not texts.texts:
            return
        loop = asyncio.get_running_loop()
        fresh = self.after_load is not None and not self.dlp.loaded(policy)
        try:
            await asyncio.wait_for(
                loop.run_in_executor(self._pool, self.dlp.detector, policy), WARM_TIMEOUT_S
            )
            if fresh and self.after_load is not None:
                done = loop.run_in_executor(self._pool, self.after_load)
                done.add_done_callback(_log_failure("after loading a DLP detector"))
            result = await asyncio.wait_for(
                self._run(request, self._protect, request, texts.texts, policy),
                policy.timeout_s,
            )
        except (QueueFull, PoolOverloaded):
            _withhold(request)  # refused unchecked: a prompt log of it holds no raw text
            raise
        except Exception as error:
            self._failed(request, policy, error)
            return
        if result.refusal is not None:
            texts.write(result.texts)  # redacted: the log of a refused request holds no PII
            raise result.refusal
        texts.write(result.texts)
        request.notes.dlp = DlpNote(result.status, result.counts)
        if result.restorer:
            self.restorers.set(request, result.restorer)
        self._maybe_purge(loop)

    def warm(self, store: Store) -> int:
        """Build now the detectors of the policies projects set (and of the default policy),
        the most used first, at most ``MAX_WARM``: a project's first request would otherwise
        wait seconds for its model. How many are ready (built now or before). Never raises:
        a detector that does not build here fails (closed) on its first request instead."""
        from sqlalchemy import select

        used: dict[str, tuple[int, Policy]] = {}
        try:
            with store.session() as s:
                rows = s.execute(select(t.Project.options)).all()
        except Exception as error:
            log.warning("DLP warm-up could not read the projects: %s", type(error).__name__)
            rows = []
        for (options,) in rows:
            try:
                policy = policy_from_options(options or {}, default=self.default_policy)
            except GenAIError:
                continue  # a broken policy: its requests are refused, nothing to load
            if policy is not None:
                count = used.get(policy.recognizer_key, (0, policy))[0]
                used[policy.recognizer_key] = (count + 1, policy)
        built = 0
        for _, policy in sorted(used.values(), key=lambda u: -u[0])[:MAX_WARM]:
            try:
                self.dlp.detector(policy)
                built += 1
            except Exception as error:
                log.warning("a DLP detector did not build: %s", type(error).__name__)
        return built

    def _protect(self, request: GatewayRequest, texts: list[str], policy: Policy) -> _Result:
        """Detect, then anonymise (in a worker thread)."""
        plans = self.dlp.plan(texts, policy)
        if blocked(plans):
            redacted = _redacted(texts, plans)
            try:
                check_blocked(plans)
            except DlpBlocked as refusal:
                return _Result(redacted, Restorer({}), {}, refusal=refusal)
        session = None
        if request.session_id:
            principal = str(request.principal.id)
            session = self.dlp.session_key(
                request.project_id, request.session_id, principal=principal
            )
        try:
            done = self.dlp.anonymize(
                texts, policy, project_id=request.project_id, session=session, plans=plans
            )
        except Exception as error:
            if not policy.fail_open:
                raise
            # the vault is down: pseudonyms cannot be kept, so those spans are redacted
            log.warning("DLP vault failed (%s): redacting instead", type(error).__name__)
            hasher = self.dlp.hasher(request.project_id)
            degraded = [render(t, p, hasher=hasher) for t, p in zip(texts, plans, strict=True)]
            return _Result(degraded, Restorer({}), {}, status="degraded")
        return _Result(done.texts, done.restorer, done.counts)

    def _failed(self, request: GatewayRequest, policy: Policy, error: BaseException) -> None:
        # our own errors name no values; anything else is named by its type only
        if isinstance(error, TimeoutError):
            reason = f"detection took longer than the policy's timeout_s ({policy.timeout_s:g} s)"
        elif isinstance(error, GenAIError):
            reason = error.message
        else:
            reason = f"{type(error).__name__} in the detector"
        if policy.fail_open:
            log.warning(
                "DLP could not check request %s of project %s (%s); sent unchecked: "
                "the project's policy fails open",
                request.request_id,
                request.project,
                reason,
            )
            request.notes.dlp = DlpNote("failed_open")
            return
        log.error(
            "DLP could not check request %s of project %s (%s): refused",
            request.request_id,
            request.project,
            reason,
        )
        _withhold(request)
        raise BackendError(
            f"DLP could not check this request for personal data ({reason}), so it was "
            f"refused: project {request.project!r}'s DLP policy fails closed. Retry shortly; "
            "a project owner can set `fail_open: true` in the policy to send such requests "
            "unchecked",
            backend="dlp",
            status=503,
            retryable=True,
            retry_after=1.0,
        ) from None

    async def _log_copy(self, request: GatewayRequest) -> None:
        """A scrubbed copy of the body for the prompt log of a project without DLP."""
        copy = json.loads(json.dumps(request.body, default=str))
        texts = collect_texts(request.endpoint, copy)
        try:
            scrubbed = await asyncio.wait_for(
                self._run(request, lambda: [self.dlp.scrub_for_log(t) for t in texts.texts]),
                5.0,
            )
        except Exception:
            scrubbed = [WITHHELD] * len(texts.texts)
        texts.write(scrubbed)
        request.notes.log_request = {
            k: v for k, v in copy.items() if k in ("messages", "prompt", "input")
        }

    async def _run(self, request: GatewayRequest, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` as the request's project's job in the fair CPU pool (or here)."""
        if self._cpu is not None:
            return await self._cpu.run(request.project, fn, *args)
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def _maybe_purge(self, loop: asyncio.AbstractEventLoop) -> None:
        now = self._clock()
        if now - self._last_purge < PURGE_EVERY_S:
            return
        self._last_purge = now
        future = loop.run_in_executor(self._pool, self.dlp.vault.purge_expired)
        future.add_done_callback(_log_failure("purging the DLP vault"))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _log_failure(what: str) -> Callable[[asyncio.Future[Any]], None]:
    def done(future: asyncio.Future[Any]) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            if future.exception() is not None:
                log.warning("%s failed: %s", what, type(future.exception()).__name__)

    return done


def _redacted(texts: list[str], plans: list[list[Planned]]) -> list[str]:
    return [render(text, spans, redact_only=True) for text, spans in zip(texts, plans, strict=True)]


def _withhold(request: GatewayRequest) -> None:
    """Replace every text of the body: it may hold personal data no one could check."""
    texts = collect_texts(request.endpoint, request.body)
    texts.write([WITHHELD] * len(texts.texts))


class DlpResponseStage:
    """Restores the originals of the request's pseudonyms in the answer."""

    name = "dlp"

    def __init__(self, restorers: PerRequest[Restorer]) -> None:
        self._restorers = restorers  # the request stage's (DlpRequestStage.restorers)

    async def after(self, request: GatewayRequest, response: dict[str, Any]) -> dict[str, Any]:
        from genai.dlp import restore_response

        restorer = self._restorers.get(request)
        return response if restorer is None else restore_response(response, restorer)

    def stream(self, request: GatewayRequest) -> StreamFilter | None:
        restorer = self._restorers.get(request)
        return None if restorer is None else RestoringFilter(restorer)


def dlp_stages(
    settings: Settings,
    store: Store,
    *,
    after_load: Callable[[], None] | None = None,
    pool: FairPool | None = None,
) -> tuple[DlpRequestStage, DlpResponseStage]:
    """The DLP stages of a gateway: put the request stage last among the request stages
    (it must see the final prompt) and the response stage first among the response stages
    (they run in reverse, so it restores last, just before the client)."""
    default = Policy.load(settings.dlp_policy) if settings.dlp_policy else None
    dlp = Dlp.from_settings(settings, store)
    request = DlpRequestStage(dlp, default_policy=default, after_load=after_load, pool=pool)
    return request, DlpResponseStage(request.restorers)
