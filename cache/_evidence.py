"""Where the error bound's evidence lives: per project, deployment, calibration curve and
verifier-score block, the semantic hits answered and the ones labelled wrong.

    evidence.add(project_id, "chat", curve_id, block, {"hits": 1, "estimated": 0.01})
    evidence.read(project_id, curve_id)    # {"chat": {block: {"hits": 1.0, ...}}}

:class:`MemoryEvidence` keeps it in the process (an add is seen by the next read);
:class:`~cache._sql_evidence.SqlEvidence` in the platform's database (``cache_estimates``),
where every gateway process adds to it with atomic upserts (buffered, written about every
second) and reads a project's rows again after a short TTL (:class:`~cache.ErrorBound`).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from typing import Protocol

__all__ = ["EVIDENCE", "Evidence", "EvidenceRows", "MemoryEvidence", "wilson"]

#: What is counted per block: semantic hits answered, the sum of their estimated P(wrong)
#: when answered, those feedback reported wrong, those re-checked against a fresh answer,
#: and those whose fresh answer disagreed.
EVIDENCE = ("hits", "estimated", "reported", "rechecked", "recheck_wrong")

#: deployment → block → counts (names of :data:`EVIDENCE`)
EvidenceRows = dict[str, dict[int, dict[str, float]]]


class Evidence(Protocol):
    """Counts per (project, deployment, curve, block); every call names the project."""

    #: whether an add is seen by the next read at once (else after a flush)
    live: bool

    def add(
        self,
        project_id: int,
        deployment: str,
        curve: str,
        block: int,
        counts: Mapping[str, float],
    ) -> None: ...

    def read(self, project_id: int, curve: str) -> EvidenceRows: ...

    def flush(self) -> None: ...


class MemoryEvidence:
    """The evidence in a dict: one process, gone on exit."""

    live = True

    def __init__(self) -> None:
        self._rows: dict[tuple[int, str], EvidenceRows] = {}
        self._lock = threading.Lock()

    def add(
        self,
        project_id: int,
        deployment: str,
        curve: str,
        block: int,
        counts: Mapping[str, float],
    ) -> None:
        with self._lock:
            rows = self._rows.setdefault((project_id, curve), {})
            row = rows.setdefault(deployment, {}).setdefault(block, dict.fromkeys(EVIDENCE, 0.0))
            for name, value in counts.items():
                row[name] += value

    def read(self, project_id: int, curve: str) -> EvidenceRows:
        with self._lock:
            rows = self._rows.get((project_id, curve), {})
            return {d: {b: dict(c) for b, c in blocks.items()} for d, blocks in rows.items()}

    def flush(self) -> None:
        return None


def wilson(successes: float, n: float, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95% by default); (0, 1) for no trials."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    scale = 1 + z * z / n
    return max(0.0, (centre - spread) / scale), min(1.0, (centre + spread) / scale)
