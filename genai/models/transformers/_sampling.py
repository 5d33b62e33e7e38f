"""Choosing the next token of each row of a batch, as OpenAI's parameters define it.

Each row keeps its own parameters and its own random generator, so a seeded request draws
the same tokens whether it runs alone or in a batch with others.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

import torch

from genai.models._types import SamplingParams

__all__ = ["RowSampler", "pick_tokens"]


class RowSampler:
    """One row's sampling state: its parameters, generator and token counts (penalties)."""

    def __init__(self, params: SamplingParams, vocab_size: int, device: torch.device) -> None:
        self.params = params
        self.generator: torch.Generator | None = None
        if not params.greedy:
            self.generator = torch.Generator(device="cpu")
            self.generator.manual_seed(
                params.seed if params.seed is not None else secrets.randbits(63)
            )
        self.penalised = bool(params.presence_penalty or params.frequency_penalty)
        self.counts = torch.zeros(vocab_size, device=device) if self.penalised else None

    def record(self, token: int) -> None:
        if self.counts is not None:
            self.counts[token] += 1


def _penalise(logits: torch.Tensor, row: RowSampler) -> torch.Tensor:
    assert row.counts is not None
    p = row.params
    return (
        logits
        - p.frequency_penalty * row.counts
        - p.presence_penalty * (row.counts > 0).to(logits.dtype)
    )


def _top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    if top_p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, descending=True)
    cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
    # keep the smallest set whose mass reaches top_p (the first token always stays)
    remove = cumulative - torch.softmax(sorted_logits, dim=-1) >= top_p
    sorted_logits = sorted_logits.masked_fill(remove, float("-inf"))
    return torch.empty_like(logits).scatter_(0, order, sorted_logits)


def pick_tokens(logits: torch.Tensor, rows: Sequence[RowSampler]) -> list[int]:
    """The next token of each row, from the last position's logits (shape: rows × vocab)."""
    logits = logits.float()
    out: list[int] = []
    greedy_all = all(r.params.greedy and not r.penalised for r in rows)
    if greedy_all:
        return [int(t) for t in torch.argmax(logits, dim=-1).tolist()]
    for i, row in enumerate(rows):
        row_logits: Any = logits[i]
        if row.penalised:
            row_logits = _penalise(row_logits, row)
        if row.params.greedy:
            out.append(int(torch.argmax(row_logits)))
            continue
        row_logits = _top_p_filter(row_logits / row.params.temperature, row.params.top_p)
        probs = torch.softmax(row_logits, dim=-1).cpu()
        out.append(int(torch.multinomial(probs, 1, generator=row.generator)))
    return out
