"""The bandits of deployments with the bandit policy: one per (project, deployment), kept
in memory up to a bound, each started from the feedback recorded so far."""

from __future__ import annotations

import asyncio
from typing import Any

from genai.gateway._spec import DeploymentSpec
from genai.gateway._traffic import Bandit
from genai.store import Store

__all__ = ["MAX_BANDITS", "Bandits"]

#: Bandits kept in memory (one per deployment with the bandit policy); one dropped is
#: rebuilt from the feedback table on its next request.
MAX_BANDITS = 4096


class Bandits:
    def __init__(self, store: Store, max_bandits: int = MAX_BANDITS) -> None:
        self.store = store
        self._max = max_bandits
        self._bandits: dict[tuple[int, str], Bandit] = {}

    def __getitem__(self, key: tuple[int, str]) -> Bandit:
        return self._bandits[key]

    def __len__(self) -> int:
        return len(self._bandits)

    async def get(self, project_id: int, deployment: str, spec: DeploymentSpec) -> Bandit:
        """The deployment's bandit, started from the feedback recorded so far."""
        key = (project_id, deployment)
        bandit = self._bandits.get(key)
        if bandit is None:
            totals = await asyncio.to_thread(
                self._feedback_totals, project_id, deployment, spec.bandit.cost_weight
            )
            bandit = self._bandits.setdefault(
                key, Bandit(spec.bandit.prior_alpha, spec.bandit.prior_beta)
            )
            bandit.seed(totals)
            while len(self._bandits) > self._max:  # the oldest: re-seeded when next used
                self._bandits.pop(next(iter(self._bandits)))
        return bandit

    def _feedback_totals(
        self, project_id: int, deployment: str, cost_weight: float
    ) -> dict[str, tuple[float, float]]:
        """Each arm's (sum of rewards, number of rewards), a reward being what live feedback
        gives: the score less ``cost_weight`` times the answer's cost (from the ledger)."""
        from sqlalchemy import and_, case, func, select

        from genai.store import schema as t

        f, u = t.Feedback, t.UsageRecord
        reward: Any = f.score
        if cost_weight:
            raw = f.score - cost_weight * func.coalesce(u.cost_usd, 0.0)
            reward = case((raw < 0, 0.0), (raw > 1, 1.0), else_=raw)
        query = (
            select(f.target, func.sum(reward), func.count())
            .where(f.project_id == project_id, f.deployment == deployment)
            .group_by(f.target)
        )
        if cost_weight:
            query = query.outerjoin(
                u, and_(u.project_id == f.project_id, u.request_id == f.request_id)
            )
        with self.store.session() as s:
            rows = s.execute(query).all()
        return {target: (float(total or 0.0), float(count)) for target, total, count in rows}
