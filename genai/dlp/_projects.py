"""A project's DLP policy, read and set through the tenancy API (authorized, audited)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from genai.dlp._policy import OPTION_KEY, Policy, policy_from_options
from genai.tenancy import Action

if TYPE_CHECKING:
    from genai._client import Client

__all__ = ["ProjectPolicies", "effective_policy"]


class ProjectPolicies:
    """``get`` needs read access to the project, ``set`` its owner (``project:update``)."""

    def __init__(self, client: Client) -> None:
        self._ctx = client._ctx
        self._client = client

    def get(self, project: str) -> Policy | None:
        """The project's own policy; None when it sets none (or turned DLP off)."""
        with self._ctx.store.session() as s:
            me = self._ctx.me(s)
            row = self._ctx.project(s, me, project, Action.PROJECT_READ)
            options = dict(row.options or {})
        return policy_from_options(options, project=project)

    def project_id(self, project: str) -> int:
        """The project's id (what salts its ``hash`` action), for readers of the project."""
        with self._ctx.store.session() as s:
            me = self._ctx.me(s)
            return self._ctx.project(s, me, project, Action.PROJECT_READ).id

    def set(self, project: str, policy: Policy) -> None:
        """Store ``policy`` in the project's options (the gateway picks it up within its
        key-cache TTL)."""
        self._client.projects.set_option(project, OPTION_KEY, policy.to_json())

    def disable(self, project: str) -> None:
        """Turn DLP off for the project, whatever the platform's default policy says."""
        self._client.projects.set_option(project, OPTION_KEY, Policy(enabled=False).to_json())


def effective_policy(client: Client, project: str) -> Policy | None:
    """The policy that governs the project's data: its own, else the platform's
    ``GENAI_DLP_POLICY`` file; None when neither is set or the project turned DLP off."""
    with client._ctx.store.session() as s:
        me = client._ctx.me(s)
        options = dict(client._ctx.project(s, me, project, Action.PROJECT_READ).options or {})
    path = client.settings.dlp_policy
    default = Policy.load(path) if path is not None else None
    return policy_from_options(options, default=default, project=project)
