"""What the gateway admits, so that no project can stall another: request-size limits,
a limit on each project's requests in progress, and the fair CPU pool.

Size limits (HTTP 400, checked before anything is queued or counted):

- ``/v1/embeddings``: at most ``max_embedding_inputs`` texts per request (OpenAI: 2048);
  with the gateway's own embedding model, at most ``max_embedding_input_tokens`` tokens
  per text (OpenAI: 8192) and ``max_embedding_tokens`` in all (OpenAI: 300,000), counted
  with the model's tokenizer (:func:`check_embedding_tokens`);
- chat and completions: the prompt's estimated tokens (4 characters a token, over the
  JSON of the messages, prompt and tools) plus ``n`` × ``max_tokens`` at most
  ``max_request_tokens``.

Requests in progress: each project may have at most N requests in progress in one gateway
process; the next is refused at once (429, ``Retry-After: 1``, OpenAI's ``rate_limit``
error, a ``rate_limited`` ledger row). N is ``max_in_flight_per_project`` (the operator's,
``GENAI_GATEWAY_MAX_IN_FLIGHT_PER_PROJECT``) or the project's quota ``max_in_flight``,
whichever is lower: owners set their own quotas, so a quota may lower the operator's limit
and never raise it (with the operator's set to none, the quota alone applies). The count is
per process: behind N workers or replicas a project may have N times as many. A slot is
held for the whole request, a stream until its last byte is sent or its client leaves.

The CPU pool (:class:`~genai.pool.FairPool`, fair by worker time between projects, with
bounded queues: 429 for a project over its share, 503 when the process is full): the
gateway's own embeddings, the cache's question embeddings, DLP detection, knowledge-bot
retrieval and extractive answers run there as their project's jobs; while a request is
admitted, :func:`genai.pool.offload` runs in that pool as the project's work.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson
from starlette.responses import Response

from genai.errors import QuotaExceeded, ValidationError
from genai.gateway._options import GatewayOptions
from genai.gateway._stages import GatewayRequest
from genai.pool import FairPool, working_for
from genai.tenancy import QuotaLimits

if TYPE_CHECKING:
    from starlette.types import Receive, Scope, Send

__all__ = [
    "Admission",
    "Slot",
    "check_embedding_tokens",
    "check_size",
    "cpu_pool",
    "estimate_prompt_tokens",
]

CHARS_PER_TOKEN = 4  # OpenAI's rule of thumb for English text
IN_FLIGHT_RETRY_S = 1.0


def cpu_pool(options: GatewayOptions) -> FairPool:
    """The fair CPU pool the options describe (one per gateway process)."""
    return FairPool(
        workers=options.cpu_workers,
        max_queued_per_owner=options.cpu_queue_per_project,
        max_queued=max(options.cpu_queue, options.cpu_queue_per_project),
    )


# ---------------------------------------------------------------- size limits


def estimate_prompt_tokens(body: dict[str, Any]) -> int:
    """An estimate of a chat or completion request's prompt tokens: 4 characters a token
    over the JSON of its messages, prompt and tools (no tokenizer on the hot path)."""
    parts = [body.get("messages"), body.get("prompt"), body.get("tools")]
    return math.ceil(len(orjson.dumps(parts)) / CHARS_PER_TOKEN)


def check_size(endpoint: str, body: dict[str, Any], options: GatewayOptions) -> None:
    """Refuse (400) a request larger than the gateway's limits for ``endpoint``."""
    if endpoint == "embeddings":
        given = body.get("input")
        count = len(given) if isinstance(given, list) else 1
        if count > options.max_embedding_inputs:
            raise ValidationError(
                f"'input' has {count} texts, but this gateway embeds at most "
                f"{options.max_embedding_inputs} per request (GENAI_GATEWAY_MAX_EMBEDDING_"
                f"INPUTS): send them in batches of {options.max_embedding_inputs} or fewer",
                field="input",
            )
        return
    completion = body.get("max_completion_tokens") or body.get("max_tokens") or 0
    choices = body.get("n") or 1
    if not isinstance(completion, int | float) or not isinstance(choices, int | float):
        return  # check_request refused these already
    completion, choices = int(completion), int(choices)
    prompt = estimate_prompt_tokens(body)
    total = prompt + choices * completion
    if total > options.max_request_tokens:
        asked = f" plus {choices} × max_tokens {completion}" if completion else ""
        raise ValidationError(
            f"this request may use about {total} tokens (about {prompt} in the prompt, at "
            f"{CHARS_PER_TOKEN} characters a token{asked}), over this gateway's limit of "
            f"{options.max_request_tokens} tokens per request (GENAI_GATEWAY_MAX_REQUEST_"
            "TOKENS): shorten the prompt or lower max_tokens",
            field="max_tokens" if completion else "messages",
        )


def check_embedding_tokens(counts: Sequence[int], options: GatewayOptions) -> None:
    """Refuse (400) texts over the per-text or the per-request token limit."""
    for index, count in enumerate(counts):
        if count > options.max_embedding_input_tokens:
            raise ValidationError(
                f"input {index} has {count} tokens, but this gateway embeds at most "
                f"{options.max_embedding_input_tokens} tokens per text (GENAI_GATEWAY_MAX_"
                "EMBEDDING_INPUT_TOKENS): split or shorten it",
                field="input",
            )
    total = sum(counts)
    if total > options.max_embedding_tokens:
        raise ValidationError(
            f"the {len(counts)} texts of 'input' have {total} tokens in all, but this gateway "
            f"embeds at most {options.max_embedding_tokens} per request (GENAI_GATEWAY_MAX_"
            "EMBEDDING_TOKENS): send fewer texts at once",
            field="input",
        )


# ---------------------------------------------------------------- requests in progress


class Admission:
    """Counts each project's requests in progress in this process, and refuses past its
    limit (see the module docstring)."""

    def __init__(self, options: GatewayOptions, pool: FairPool) -> None:
        self.options = options
        self.pool = pool
        self._held: dict[int, int] = {}
        self._lock = threading.Lock()  # a slot may be released by a finalizer's thread

    def limit_for(self, limits: QuotaLimits) -> int | None:
        """The project's limit: the lower of the operator's and the quota's (None: none)."""
        ceiling = self.options.max_in_flight_per_project
        own = limits.max_in_flight
        if own is None or (ceiling is not None and ceiling < own):
            return ceiling
        return own

    def in_flight(self, project_id: int) -> int:
        return self._held.get(project_id, 0)

    def enter(self, call: GatewayRequest, limits: QuotaLimits) -> Slot:
        """Check the request's size (400), then take one of its project's slots (429)."""
        check_size(call.endpoint, call.body, self.options)
        limit = self.limit_for(limits)
        with self._lock:
            held = self._held.get(call.project_id, 0)
            if limit is not None and held >= limit:
                raise QuotaExceeded(
                    f"project {call.project!r} has {held} requests in progress on this gateway "
                    f"process, its limit ({_source(limit, limits)}): retry in a second, or send "
                    "fewer requests at once",
                    retry_after=IN_FLIGHT_RETRY_S,
                )
            self._held[call.project_id] = held + 1
        return Slot(self, call.project_id, call.project)

    def _release(self, project_id: int) -> None:
        with self._lock:
            held = self._held.get(project_id, 0) - 1
            if held > 0:
                self._held[project_id] = held
            else:
                self._held.pop(project_id, None)


def _source(limit: int, limits: QuotaLimits) -> str:
    if limits.max_in_flight == limit:
        return f"max_in_flight {limit} of the project's quota"
    return f"{limit}, the gateway's GENAI_GATEWAY_MAX_IN_FLIGHT_PER_PROJECT"


class Slot:
    """One admitted request: its project's slot, and the binding of its context to the CPU
    pool as that project's work. :meth:`leave` ends both where the request was handled;
    a stream hands the slot to :meth:`until_sent`'s response, which releases it when the
    last byte is sent or the client leaves."""

    def __init__(self, admission: Admission, project_id: int, project: str) -> None:
        self.admission = admission
        self.project_id = project_id
        self.owner = project
        self._released = False
        self._handed = False
        self._binding = working_for(admission.pool, project)
        self._binding.__enter__()

    def until_sent(self, response: Response) -> Response:
        self._handed = True
        return _Held(response, self)

    def leave(self) -> None:
        """Where the request was handled (a ``finally``): unbind; release unless handed."""
        self._binding.__exit__(None, None, None)
        if not self._handed:
            self.release()

    def release(self) -> None:
        if not self._released:
            self._released = True
            self.admission._release(self.project_id)


class _Held(Response):
    """A response that holds its request's slot until it has been sent (or abandoned)."""

    def __init__(self, inner: Response, slot: Slot) -> None:  # shares the inner's headers
        self._inner = inner
        self._slot = slot
        self.status_code = inner.status_code
        self.media_type = inner.media_type
        self.background = None
        self.raw_headers = inner.raw_headers
        weakref.finalize(self, slot.release)  # never sent at all: released when dropped

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            with working_for(self._slot.admission.pool, self._slot.owner):
                await self._inner(scope, receive, send)
        finally:
            self._slot.release()
