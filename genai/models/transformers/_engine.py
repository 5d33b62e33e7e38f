"""The batching engine of the transformers backend: one thread that owns the model.

Requests wait in a queue. The engine takes up to ``max_batch_size`` of them (waiting at
most ``max_wait_s`` for company), prefills them together and decodes them one token per
step. Requests that arrive while a batch runs join it at the next step (iteration-level
batching): they are prefilled apart, and their KV cache is left-padded and stacked onto
the running one. A finished or cancelled row leaves the batch at once. Rows may use
different adapters: :class:`MultiLoRA` applies each row's own.

Every row is left-padded, masked and given its own position ids, so a greedy request
produces the same tokens in any batch as alone (up to the last bit of float arithmetic).
"""

from __future__ import annotations

import inspect
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import torch

from genai.models._text import IncrementalDetokenizer, StopMatcher
from genai.models._types import FinishReason, GenerationChunk, TokenLogprob, TopLogprob
from genai.models.transformers._guided import Guide, allowed_rows, masked
from genai.models.transformers._lora import MultiLoRA
from genai.models.transformers._sampling import RowSampler, pick_tokens

__all__ = ["BASE", "Engine", "Row"]

log = logging.getLogger(__name__)
BASE = "__base__"  # the adapter name of a row that uses the base model alone


@dataclass(eq=False)
class Row:
    """One request in the engine."""

    prompt_ids: list[int]
    adapter: str
    max_new: int
    sampler: RowSampler
    stops: StopMatcher
    detok: IncrementalDetokenizer
    emit: Callable[[GenerationChunk], None]
    guide: Guide | None = None  # constrained decoding (a JSON schema)
    logprobs: int | None = None  # log-probabilities wanted: the top alternatives per token
    cancelled: bool = False
    generated: list[int] = field(default_factory=list)
    scored: list[TokenLogprob] = field(default_factory=list)  # not yet sent
    finish: FinishReason | None = None
    enqueued: float = field(default_factory=time.monotonic)


@dataclass
class _Batch:
    rows: list[Row]
    cache: Any
    mask: torch.Tensor  # (rows, cached tokens): 1 for a real token, 0 for padding
    positions: torch.Tensor  # (rows,): the position of each row's next token
    tokens: torch.Tensor  # (rows,): each row's last sampled token, fed in next


class Engine:
    """Owns the model on one thread; everything that touches it runs there."""

    def __init__(
        self,
        model: Any,
        *,
        eos_ids: set[int],
        max_batch_size: int,
        max_wait_s: float,
        device: torch.device,
        vocab_size: int,
        on_step: Callable[[int, float], None] | None = None,
        token_text: Callable[[int], str] = str,
    ) -> None:
        self.model = model
        self.token_text = token_text
        # the KV cache's keyword: ``cache`` since transformers 5.2x, ``past_key_values``
        # (deprecated there) before
        params = inspect.signature(model.forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        self.lora = MultiLoRA(model)
        self.eos_ids = eos_ids
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.device = device
        self.vocab_size = vocab_size
        self.on_step = on_step
        self._pending: queue.Queue[Row] = queue.Queue()
        self._controls: queue.Queue[tuple[Callable[[], Any], Future[Any]]] = queue.Queue()
        self._batch: _Batch | None = None
        self._stop = threading.Event()
        # the next step's token masks, computed while the model runs (llguidance and torch
        # both release the GIL); the logits' width, known after the first step
        self._masks = ThreadPoolExecutor(max_workers=1, thread_name_prefix="genai-masks")
        self._width: int | None = None
        self._thread = threading.Thread(
            target=self._run, name="genai-transformers-engine", daemon=True
        )
        self.supports_joining = True

    # ------------------------------------------------------------ public, any thread

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._masks.shutdown(wait=False)

    def submit(self, row: Row) -> None:
        self._pending.put(row)

    def call(self, fn: Callable[[], Any]) -> Future[Any]:
        """Run ``fn`` on the engine thread between two steps; its result comes back."""
        future: Future[Any] = Future()
        self._controls.put((fn, future))
        return future

    def active_rows(self) -> list[Row]:
        """The rows in the running batch (a snapshot; call on the engine thread for truth)."""
        batch = self._batch
        return list(batch.rows) if batch else []

    def queued_rows(self) -> list[Row]:
        """The rows waiting for a place in the batch (a snapshot)."""
        with self._pending.mutex:
            return list(self._pending.queue)

    @property
    def waiting(self) -> int:
        return self._pending.qsize()

    @property
    def running(self) -> int:
        batch = self._batch
        return len(batch.rows) if batch else 0

    # ------------------------------------------------------------ the loop

    def _run(self) -> None:
        torch.set_grad_enabled(False)
        while not self._stop.is_set():
            try:
                self._run_controls()
                if self._batch is None:
                    first = self._next(timeout=0.05)
                    if first is None:
                        continue
                    self._admit([first, *self._gather(self.max_batch_size - 1, self.max_wait_s)])
                else:
                    room = self.max_batch_size - len(self._batch.rows)
                    if room > 0 and self.supports_joining and not self._pending.empty():
                        self._admit(self._gather(room, 0.0))
                    if self._batch is not None:
                        self._step()
            except Exception as error:  # keep serving: fail the rows of this batch only
                log.exception("generation step failed")
                self._fail_batch(error)
        self._fail_batch(RuntimeError("the model server is shutting down"))

    def _run_controls(self) -> None:
        while True:
            try:
                fn, future = self._controls.get_nowait()
            except queue.Empty:
                return
            try:
                future.set_result(fn())
            except BaseException as error:
                future.set_exception(error)

    def _next(self, timeout: float) -> Row | None:
        while True:
            try:
                row = self._pending.get(timeout=timeout)
            except queue.Empty:
                return None
            if not row.cancelled:
                return row

    def _gather(self, room: int, wait_s: float) -> list[Row]:
        rows: list[Row] = []
        deadline = time.monotonic() + wait_s
        while len(rows) < room:
            remaining = deadline - time.monotonic()
            try:
                row = (
                    self._pending.get(timeout=remaining)
                    if remaining > 0
                    else self._pending.get_nowait()
                )
            except queue.Empty:
                break
            if not row.cancelled:
                rows.append(row)
        return rows

    # ------------------------------------------------------------ prefill and decode

    def _forward(
        self,
        ids: torch.Tensor,
        mask: torch.Tensor,
        positions: torch.Tensor,
        cache: Any,
        adapters: list[str],
    ) -> torch.Tensor:
        self.lora.choose([None if a == BASE else a for a in adapters])
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            **{self._cache_kw: cache},
        )
        logits: torch.Tensor = out.logits[:, -1, :]
        return logits

    def _admit(self, rows: list[Row]) -> None:
        if not rows:
            return
        from transformers import DynamicCache

        started = time.monotonic()
        width = max(len(r.prompt_ids) for r in rows)
        ids = torch.zeros((len(rows), width), dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            n = len(row.prompt_ids)
            ids[i, width - n :] = torch.tensor(row.prompt_ids, dtype=torch.long)
            mask[i, width - n :] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        cache = DynamicCache(config=getattr(self.model, "config", None))
        try:
            logits = self._forward(ids, mask, positions, cache, [r.adapter for r in rows])
        except Exception as error:  # the newcomers fail, told why; a running batch goes on
            log.exception("prefill failed")
            self._fail_rows(rows, error)
            return
        fresh = _Batch(
            rows=list(rows),
            cache=cache,
            mask=mask,
            positions=mask.sum(dim=1),
            tokens=torch.zeros(len(rows), dtype=torch.long, device=self.device),
        )
        self._take(fresh, logits)
        self._batch = fresh if self._batch is None else _merge(self._batch, fresh)
        self._drop_finished()
        if self.on_step:
            self.on_step(len(rows), time.monotonic() - started)

    def _step(self) -> None:
        batch = self._batch
        assert batch is not None
        if any(r.cancelled for r in batch.rows):
            for row in batch.rows:
                if row.cancelled:
                    row.finish = "cancelled"
            self._drop_finished()
            if self._batch is None:
                return
            batch = self._batch
        started = time.monotonic()
        guides = [r.guide for r in batch.rows]
        ahead = (  # for one guided row a thread's hand-over costs more than its mask
            self._masks.submit(allowed_rows, guides, self._width)
            if self._width is not None and sum(g is not None for g in guides) > 1
            else None
        )
        batch.mask = torch.cat([batch.mask, torch.ones_like(batch.mask[:, :1])], dim=1)
        logits = self._forward(
            batch.tokens.unsqueeze(1),
            batch.mask,
            batch.positions.unsqueeze(1),
            batch.cache,
            [r.adapter for r in batch.rows],
        )
        batch.positions = batch.positions + 1
        self._take(batch, logits, ahead.result() if ahead is not None else None)
        self._drop_finished()
        if self.on_step:
            self.on_step(len(batch.rows), time.monotonic() - started)

    def _take(
        self, batch: _Batch, logits: torch.Tensor, allowed: torch.Tensor | None = None
    ) -> None:
        rows = batch.rows
        self._width = logits.shape[1]
        # log-probabilities of the model's own distribution (before any format's mask), as
        # vLLM reports them by default
        scores = (
            torch.log_softmax(logits.float(), dim=-1)
            if any(r.logprobs is not None for r in rows)
            else None
        )
        if any(r.guide is not None for r in rows):
            logits = masked(logits, [r.guide for r in rows], allowed)
        chosen = pick_tokens(logits, [r.sampler for r in rows])
        batch.tokens = torch.tensor(chosen, dtype=torch.long, device=self.device)
        for i, (row, token) in enumerate(zip(rows, chosen, strict=True)):
            if row.guide is not None:
                row.guide.accept(token)
            if scores is not None and row.logprobs is not None and token not in self.eos_ids:
                row.scored.append(self.describe(scores[i], token, row.logprobs))
            self._advance(row, token)

    def describe(self, scores: torch.Tensor, token: int, top: int) -> TokenLogprob:
        """``token``'s entry from one position's log-probabilities, with the ``top`` most
        likely tokens there."""
        alternatives: list[TopLogprob] = []
        if top:
            values, ids = torch.topk(scores, top)
            alternatives = [
                TopLogprob(token=self.token_text(int(t)), token_id=int(t), logprob=float(v))
                for v, t in zip(values.tolist(), ids.tolist(), strict=True)
            ]
        return TokenLogprob(
            token=self.token_text(token),
            token_id=token,
            logprob=float(scores[token]),
            top=alternatives,
        )

    def score(self, prompt_ids: list[int], adapter: str, top: int) -> list[TokenLogprob | None]:
        """Each prompt token's log-probability given those before it (the first has none):
        what ``echo`` with ``logprobs`` returns. Call on the engine thread (:meth:`call`)."""
        self.lora.choose([None if adapter == BASE else adapter])
        ids = torch.tensor([prompt_ids], dtype=torch.long, device=self.device)
        logits = self.model(input_ids=ids, use_cache=False).logits[0, :-1]
        scores = torch.log_softmax(logits.float(), dim=-1)
        entries: list[TokenLogprob | None] = [None]
        for position, token in enumerate(prompt_ids[1:]):
            entries.append(self.describe(scores[position], token, top))
        return entries

    def _advance(self, row: Row, token: int) -> None:
        row.sampler.record(token)
        row.generated.append(token)
        if token in self.eos_ids:
            self._finish(row, "stop")
            return
        text = row.stops.feed(row.detok.add(token))
        if text:
            row.emit(GenerationChunk(text=text, logprobs=self._sent(row)))
        if row.stops.stopped or (row.guide is not None and row.guide.finished):
            self._finish(row, "stop")
        elif len(row.generated) >= row.max_new:
            self._finish(row, "length")

    @staticmethod
    def _sent(row: Row) -> list[TokenLogprob] | None:
        if row.logprobs is None:
            return None
        scored, row.scored = row.scored, []
        return scored

    def _finish(self, row: Row, reason: FinishReason) -> None:
        tail = row.detok.flush()
        rest = (row.stops.feed(tail) if tail else "") + row.stops.flush()
        if rest:
            row.emit(GenerationChunk(text=rest, logprobs=self._sent(row)))
        row.finish = reason
        row.emit(
            GenerationChunk(
                finish_reason=reason,
                prompt_tokens=len(row.prompt_ids),
                completion_tokens=len(row.generated),
                logprobs=self._sent(row) or None,
            )
        )

    def _drop_finished(self) -> None:
        batch = self._batch
        if batch is None:
            return
        keep = [i for i, r in enumerate(batch.rows) if r.finish is None]
        if len(keep) == len(batch.rows):
            return
        if not keep:
            self._batch = None
            return
        index = torch.tensor(keep, dtype=torch.long, device=self.device)
        batch.cache.batch_select_indices(index)
        batch.rows = [batch.rows[i] for i in keep]
        batch.mask, batch.positions, batch.tokens = (
            batch.mask[index],
            batch.positions[index],
            batch.tokens[index],
        )
        _trim_left(batch)

    def _fail_batch(self, error: BaseException) -> None:
        rows = self._batch.rows if self._batch else []
        self._batch = None
        while True:
            try:
                rows.append(self._pending.get_nowait())
            except queue.Empty:
                break
        self._fail_rows(rows, error)

    @staticmethod
    def _fail_rows(rows: list[Row], error: BaseException) -> None:
        for row in rows:
            if row.finish is None:
                row.finish = "cancelled"
                row.emit(GenerationChunk(finish_reason="cancelled", text=f"[error] {error}"))


def _left_pad(tensor: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    missing = width - tensor.shape[dim]
    if missing <= 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)


def _merge(old: _Batch, new: _Batch) -> _Batch:
    """Stack ``new`` under ``old``: caches and masks left-padded to one width."""
    width = max(old.mask.shape[1], new.mask.shape[1])
    for a, b in zip(old.cache.layers, new.cache.layers, strict=True):
        a.keys = torch.cat([_left_pad(a.keys, width, 2), _left_pad(b.keys, width, 2)], dim=0)
        a.values = torch.cat([_left_pad(a.values, width, 2), _left_pad(b.values, width, 2)], dim=0)
    old.mask = torch.cat([_left_pad(old.mask, width, 1), _left_pad(new.mask, width, 1)], dim=0)
    old.rows = old.rows + new.rows
    old.positions = torch.cat([old.positions, new.positions])
    old.tokens = torch.cat([old.tokens, new.tokens])
    return old


def _trim_left(batch: _Batch) -> None:
    """Drop leading columns that are padding in every row (left by rows that left)."""
    used = batch.mask.any(dim=0).nonzero()
    start = int(used[0]) if used.numel() else 0
    if start > 0:
        batch.mask = batch.mask[:, start:]
        for layer in batch.cache.layers:
            layer.keys = layer.keys[:, :, start:, :]
            layer.values = layer.values[:, :, start:, :]
