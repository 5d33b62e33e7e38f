"""A project's cache through the tenancy API: who may turn it on, read its counters, empty
it.

``options`` needs read access to the project; ``enable`` and ``disable`` change a project
option, so they need its owner (``project:update``) and are audited as such. ``stats``
needs ``usage:read`` in the project (viewers and up), ``invalidate`` needs
``deployment:write`` (maintainers and owners: emptying a cache changes what a deployment
costs) and is written to the audit log. Another project's cache is a 404, like a missing
project.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from cache._bound import BoundStats, ErrorBound, ErrorCurve
from cache._cache import SemanticCache
from cache._entries import CacheStats
from cache._options import OPTION_KEY, CacheLevel, CacheOptions
from genai.errors import UsageError, ValidationError
from genai.tenancy import Action
from genai.validation import check_resource_name

if TYPE_CHECKING:
    from genai import Client

__all__ = ["DeploymentEstimate", "ProjectCaches"]


@dataclass(frozen=True)
class DeploymentEstimate:
    """The error bound of one deployment of a project, as ``genai cache stats`` shows it:
    its ``max_error`` (None: no bound set), the lowest verifier score the project answers
    at under it (``min_score``) and the estimated P(wrong) there (``estimated_error``: the
    bound at the current threshold; None without a bound or where nothing is answered), and
    the judged hits with their labels (``stats``: observed error rate and its interval)."""

    deployment: str
    max_error: float | None
    min_score: float | None
    estimated_error: float | None
    stats: BoundStats


class ProjectCaches:
    """The cache of the projects a client's principal may see. ``cache`` (the entries) is
    needed by ``stats`` and ``invalidate`` only."""

    def __init__(self, client: Client, cache: SemanticCache | None = None) -> None:
        self._client = client
        self._ctx = client.context
        self._cache = cache

    @property
    def cache(self) -> SemanticCache:
        if self._cache is None:
            raise UsageError("ProjectCaches needs the SemanticCache to read or empty entries")
        return self._cache

    # ------------------------------------------------------------ on and off

    def options(self, project: str) -> CacheOptions:
        """The project's cache option: where the cache is on, with which settings."""
        with self._ctx.store.session() as s:
            row = self._ctx.project(s, self._ctx.me(s), project, Action.PROJECT_READ)
            raw = dict(row.options or {}).get(OPTION_KEY)
        return CacheOptions.parse(raw, project=project)

    def enable(
        self,
        project: str,
        deployment: str | None = None,
        *,
        threshold: float | None = None,
        ttl_s: float | None = None,
        max_temperature: float | None = None,
        verifier: bool | None = None,
        max_error: float | None = None,
        recheck_rate: float | None = None,
    ) -> CacheOptions:
        """Turn the cache on for one deployment of the project, or for all of them (those
        turned off on their own stay off); the settings given replace that level's.
        ``max_error`` bounds the estimated probability of a wrong semantic hit (it needs
        the pair verifier, on unless ``verifier=False``); ``recheck_rate`` is the share of
        verified semantic hits asked of the model again, off the hot path (real, billed
        calls: 0 by default)."""
        settings: dict[str, float | bool | None] = {
            "threshold": threshold,
            "ttl_s": ttl_s,
            "max_temperature": max_temperature,
            "verifier": verifier,
            "max_error": max_error,
            "recheck_rate": recheck_rate,
        }
        return self._change(project, deployment, True, settings)

    def disable(self, project: str, deployment: str | None = None) -> CacheOptions:
        """Turn the cache off for one deployment of the project, or for all of them (the
        deployments turned on on their own too). Entries stay until they age out or
        ``invalidate`` deletes them; none is used or added meanwhile."""
        return self._change(project, deployment, False, {})

    def _change(
        self,
        project: str,
        deployment: str | None,
        on: bool,
        settings: dict[str, float | bool | None],
    ) -> CacheOptions:
        try:
            current = self.options(project)
        except ValidationError:  # an option set by hand that does not parse: replaced
            current = CacheOptions()
        deployments = dict(current.deployments)
        if deployment is not None:
            check_resource_name(deployment, kind="deployment name")
            level = deployments.get(deployment, CacheLevel())
            deployments[deployment] = level.merged(enabled=on, **settings)
            changed = CacheOptions(current.project, deployments)
        elif on:
            changed = CacheOptions(current.project.merged(enabled=True, **settings), deployments)
        else:  # off everywhere: the deployments turned on follow the project again
            followed = {
                name: replace(level, enabled=None) if level.enabled else level
                for name, level in deployments.items()
            }
            changed = CacheOptions(current.project.merged(enabled=False), followed)
        self._client.projects.set_option(project, OPTION_KEY, changed.to_json())
        return changed

    # ------------------------------------------------------------ entries

    def stats(self, project: str) -> CacheStats:
        with self._ctx.store.session() as s:
            project_id = self._ctx.project(s, self._ctx.me(s), project, Action.USAGE_READ).id
        return self.cache.stats(project_id)

    def estimates(self, project: str, curve: ErrorCurve | None = None) -> list[DeploymentEstimate]:
        """The project's error bound per deployment (every deployment with judged hits or a
        cache setting of its own), from the evidence every gateway process shares; over
        the shipped verifier's calibration unless ``curve`` is given ([] without one)."""
        with self._ctx.store.session() as s:
            row = self._ctx.project(s, self._ctx.me(s), project, Action.USAGE_READ)
            project_id, raw = row.id, dict(row.options or {}).get(OPTION_KEY)
        if curve is None:
            curve = _shipped_curve()
            if curve is None:
                return []
        from cache._sql_evidence import SqlEvidence

        bound = ErrorBound(curve, evidence=SqlEvidence(self._ctx.store), ttl_s=0.0)
        try:
            options = CacheOptions.parse(raw, project=project)
        except ValidationError:
            options = CacheOptions()
        per = bound.deployment_stats(project_id)
        found = []
        for deployment in sorted(set(per) | set(options.deployments)):
            settings = options.settings(deployment)
            max_error = settings.max_error if settings is not None else None
            low = bound.threshold(project_id, max_error) if max_error is not None else None
            at = bound.estimate(project_id, low) if low is not None else None
            stats = per.get(deployment, BoundStats(0, 0.0, 0))
            found.append(DeploymentEstimate(deployment, max_error, low, at, stats))
        return found

    def invalidate(
        self,
        project: str,
        deployment: str | None = None,
        *,
        adapter: str | None = None,
        prompt_version: str | None = None,
        kb_version: str | None = None,
    ) -> int:
        """Delete the project's entries (of one deployment, ...); how many."""
        with self._ctx.store.session() as s:
            me = self._ctx.me(s)
            row = self._ctx.project(s, me, project, Action.DEPLOYMENT_WRITE)
            project_id = row.id
        count = self.cache.invalidate(
            project_id,
            deployment,
            adapter=adapter,
            prompt_version=prompt_version,
            kb_version=kb_version,
        )
        with self._ctx.store.session() as s:
            me = self._ctx.me(s)
            row = self._ctx.project(s, me, project, Action.DEPLOYMENT_WRITE)
            self._ctx.audit(
                s,
                me,
                "cache.invalidate",
                project=row,
                resource=f"deployment:{deployment}" if deployment else "cache",
                entries=count,
                adapter=adapter,
                prompt_version=prompt_version,
                kb_version=kb_version,
            )
        return count


def _shipped_curve() -> ErrorCurve | None:
    """The calibration shipped with the trained verifier (its training record only: no
    model is loaded), or None where it is not installed."""
    from cache._pair import VerifierArtefact, artefact_installed

    if not artefact_installed():
        return None
    return ErrorCurve.from_dict(VerifierArtefact.read().calibration)
