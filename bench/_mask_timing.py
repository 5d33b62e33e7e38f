"""The per-token loop of constrained decoding, timed the same way for every grammar library.

Imported by bench/constrained_decoding.py (llguidance, in the project's venv) and by
bench/_xgrammar_driver.py (xgrammar, in its own venv): only the standard library here.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["time_document"]


def time_document(
    start: Callable[[], Any],
    fill: Callable[[Any], None],
    apply: Callable[[], None],
    consume: Callable[[Any, int], None],
    tokens: Sequence[int],
    rounds: int,
) -> dict[str, float]:
    """Walk a matcher through ``tokens`` ``rounds`` times: before each token compute the
    mask (``fill``) and apply it to a logits row (``apply``), then advance (``consume``).

    ``start()`` makes a fresh matcher (its time is the grammar set-up). Returns medians over
    the rounds: set-up milliseconds, and microseconds per token for each step.
    """
    setup, fills, applies, consumes = [], [], [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        matcher = start()
        setup.append(time.perf_counter() - t0)
        f = a = c = 0.0
        for token in tokens:
            t0 = time.perf_counter()
            fill(matcher)
            t1 = time.perf_counter()
            apply()
            t2 = time.perf_counter()
            consume(matcher, token)
            t3 = time.perf_counter()
            f, a, c = f + t1 - t0, a + t2 - t1, c + t3 - t2
        fills.append(f / len(tokens))
        applies.append(a / len(tokens))
        consumes.append(c / len(tokens))
    mask, apply_us, consume_us = (statistics.median(x) * 1e6 for x in (fills, applies, consumes))
    return {
        "setup_ms": statistics.median(setup) * 1e3,
        "mask_us_per_token": mask,
        "apply_us_per_token": apply_us,
        "consume_us_per_token": consume_us,
        "total_us_per_token": mask + apply_us + consume_us,
        "tokens": len(tokens),
        "rounds": rounds,
    }
