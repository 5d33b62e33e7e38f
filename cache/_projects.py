"""A project's cache through the tenancy API: who may read its counters, who may empty it.

``stats`` needs ``usage:read`` in the project (viewers and up), ``invalidate`` needs
``deployment:write`` (maintainers and owners: emptying a cache changes what a deployment
costs) and is written to the audit log. Another project's cache is a 404, like a missing
project.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cache._cache import SemanticCache
from cache._entries import CacheStats
from genai.tenancy import Action

if TYPE_CHECKING:
    from genai import Client

__all__ = ["ProjectCaches"]


class ProjectCaches:
    """The cache of the projects a client's principal may see."""

    def __init__(self, client: Client, cache: SemanticCache) -> None:
        self._ctx = client.context
        self.cache = cache

    def stats(self, project: str) -> CacheStats:
        with self._ctx.store.session() as s:
            project_id = self._ctx.project(s, self._ctx.me(s), project, Action.USAGE_READ).id
        return self.cache.stats(project_id)

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
