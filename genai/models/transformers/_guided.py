"""Constrained decoding for the transformers backend, with llguidance.

Why llguidance: it is one of vLLM's structured-output backends (``guidance``), so a
schema behaves here as it does on our vLLM deployments; it computes a token mask in tens
of microseconds on a CPU (an Earley parser over a lexer, no per-schema compilation step to
cache); it supports JSON Schema broadly (``$ref``, ``anyOf``, numeric ranges, string
lengths and patterns), Lark grammars and regular expressions; and its wheel needs nothing
else (xgrammar, vLLM's default, pulls triton and a CUDA-oriented toolchain).

Each constrained row of a batch has a :class:`Guide`: before a token is chosen its mask
sets every token the grammar forbids to ``-inf``; after, the chosen token advances it.
When the grammar can go no further the row stops.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import numpy as np
import torch

from genai.errors import MissingDependencyError, ValidationError
from genai.models._tools import request_schema
from genai.models._types import GenerationRequest

__all__ = ["Guide", "Guides", "allowed_rows", "masked"]


class Guide:
    """One row's grammar state."""

    def __init__(self, matcher: Any, vocab_size: int) -> None:
        from llguidance.numpy import allocate_token_bitmask

        self._matcher = matcher
        self._vocab = vocab_size
        self._bitmask = allocate_token_bitmask(1, vocab_size)

    def allowed(self, width: int) -> torch.Tensor:
        """Which of ``width`` token ids the grammar allows next (ids past the tokenizer's
        vocabulary, which it never produces, are not allowed)."""
        from llguidance.numpy import fill_next_token_bitmask

        fill_next_token_bitmask(self._matcher, self._bitmask, 0)
        bits = np.unpackbits(self._bitmask[0].view(np.uint8), bitorder="little")
        allowed = np.zeros(width, dtype=bool)
        size = min(width, self._vocab)
        allowed[:size] = bits[:size]
        return torch.from_numpy(allowed)

    def accept(self, token: int) -> None:
        if not self._matcher.consume_token(token):
            raise RuntimeError(f"constrained decoding: {self._matcher.get_error()}")

    @property
    def finished(self) -> bool:
        """The grammar is complete and allows nothing more."""
        return bool(self._matcher.is_stopped())


def allowed_rows(guides: list[Guide | None], width: int) -> torch.Tensor:
    """Which of ``width`` token ids each row may take next (rows × width booleans; a row
    without a guide may take any). The guided rows' masks are computed together, by
    llguidance's executor across threads without the GIL, and unpacked in one call; the
    engine runs this while the model computes the step's logits."""
    rows = [(i, g) for i, g in enumerate(guides) if g is not None]
    if len(rows) == 1:
        index, guide = rows[0]
        allowed = torch.ones((len(guides), width), dtype=torch.bool)
        allowed[index] = guide.allowed(width)
        return allowed
    if not rows:
        return torch.ones((len(guides), width), dtype=torch.bool)
    return torch.from_numpy(_batch_allowed(len(guides), width, rows))


def masked(
    logits: torch.Tensor, guides: list[Guide | None], allowed: torch.Tensor | None = None
) -> torch.Tensor:
    """``logits`` (rows × vocabulary) with what each row's guide forbids at -inf, in one
    operation for the batch; ``allowed`` is :func:`allowed_rows`'s answer when it was
    computed ahead."""
    if allowed is None or allowed.shape != logits.shape:
        allowed = allowed_rows(guides, logits.shape[1])
    return logits.float().masked_fill(~allowed.to(logits.device), float("-inf"))


def _batch_allowed(size: int, width: int, rows: list[tuple[int, Guide]]) -> np.ndarray:
    from llguidance.numpy import allocate_token_bitmask, fill_next_token_bitmask_par

    vocab = rows[0][1]._vocab  # one engine, one tokenizer
    bitmask = allocate_token_bitmask(len(rows), vocab)
    fill_next_token_bitmask_par(
        _executor(), [(g._matcher, k) for k, (_, g) in enumerate(rows)], bitmask
    )
    bits = np.unpackbits(bitmask.view(np.uint8), axis=1, bitorder="little")
    allowed = np.ones((size, width), dtype=bool)
    used = min(width, vocab)
    index = np.fromiter((i for i, _ in rows), dtype=np.intp, count=len(rows))
    allowed[index, :used] = bits[:, :used]
    allowed[index, used:] = False  # ids past the tokenizer's vocabulary
    return allowed


@functools.cache
def _executor() -> Any:
    """llguidance's thread pool for masks (one per process, made on first use)."""
    import llguidance

    return llguidance.LLExecutor()


class Guides:
    """Makes guides for one tokenizer (its llguidance view is built once)."""

    def __init__(self, tokenizer: Any) -> None:
        self._hf_tokenizer = tokenizer
        self._tokenizer: Any = None

    def _llg_tokenizer(self) -> Any:
        if self._tokenizer is None:
            try:
                import llguidance.hf
            except ImportError as error:
                raise MissingDependencyError(
                    error.name or "llguidance", extra="llm", purpose="structured output"
                ) from None
            self._tokenizer = llguidance.hf.from_tokenizer(self._hf_tokenizer)
        return self._tokenizer

    def for_request(self, request: GenerationRequest) -> Guide | None:
        """The guide of a request with a response format or a forced tool call; a schema
        llguidance cannot compile is the caller's 400, naming the field."""
        wanted = request_schema(request)
        if wanted is None:
            return None
        schema, field = wanted
        import llguidance

        tokenizer = self._llg_tokenizer()
        try:
            grammar = llguidance.LLMatcher.grammar_from_json_schema(
                json.dumps(schema), defaults={"whitespace_flexible": False}
            )
        except (ValueError, TypeError) as error:
            raise ValidationError(f"the JSON schema is not usable: {error}", field=field) from None
        problem = llguidance.LLMatcher.validate_grammar(grammar, tokenizer)
        matcher = None if problem else llguidance.LLMatcher(tokenizer, grammar)
        if matcher is None or matcher.is_error():
            problem = problem or (matcher.get_error() if matcher is not None else "")
            raise ValidationError(f"the JSON schema is not usable: {problem}", field=field)
        return Guide(matcher, tokenizer.vocab_size)
