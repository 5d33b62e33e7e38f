"""Deployment changes shared by the admin API and ``genai deploy``.

Both make a new deployment revision through the registry (so roles, the audit log and
lineage apply): :func:`apply_spec` from a whole spec, :func:`change_traffic` from the newest
revision with new weights, policy, sticky header or shadow (:class:`TrafficChange` and
:func:`retarget`, the pure part, live in ``genai.gateway``; they are named here too).
"""

from __future__ import annotations

from typing import Any

from genai import Client
from genai.errors import ValidationError
from genai.gateway import (
    DeploymentSpec,
    TrafficChange,
    env_not_allowed,
    inprocess_policy,
    parse_spec,
    retarget,
    secret_not_set,
    suggested_secret_name,
)
from genai.registry import DeploymentRevision
from genai.settings import Settings

__all__ = [
    "TrafficChange",
    "apply_spec",
    "change_traffic",
    "check_credentials",
    "check_inprocess",
    "newest_revisions",
    "retarget",
]


def apply_spec(
    client: Client,
    project: str,
    name: str,
    spec: dict[str, Any],
    *,
    description: str = "",
    model: str | None = None,
    adapter: str | None = None,
) -> DeploymentRevision:
    """A new revision of deployment ``name`` serving ``spec`` (checked with ``parse_spec``,
    and its upstream keys with :func:`check_credentials`)."""
    from apps._agent_target import AgentPolicy, check_agent_targets
    from apps._knowledge import check_bot_targets

    parsed = parse_spec(spec)
    check_bot_targets(parsed)
    check_agent_targets(parsed, name, AgentPolicy.from_env())
    check_inprocess(client.settings, parsed)
    check_credentials(client, project, parsed)
    return client.registry.deployments.create(
        project,
        name,
        spec=parsed.model_dump(mode="json", exclude_unset=True),
        description=description,
        model=model,
        adapter=adapter,
    )


def check_inprocess(settings: Settings, spec: DeploymentSpec) -> None:
    """Refuse a spec whose targets (or a knowledge bot's LLM) run a backend in the gateway
    process that the operator does not allow, or load files from outside its model roots
    (:class:`genai.gateway.InProcessPolicy`). The gateway checks again before it builds
    one: this is the early half, under the settings this client runs with."""
    from apps._agent_target import AGENT_BACKEND
    from apps._knowledge import BOT_BACKEND, bot_options

    policy = inprocess_policy(settings)
    shadow = [spec.shadow.target] if spec.shadow else []
    for target in (*spec.targets, *spec.fallbacks, *shadow):
        if target.backend == BOT_BACKEND:
            llm = bot_options(target).llm
            if llm.url is None:
                where = f"target {target.name!r} (its LLM)"
                policy.check(llm.backend or "extractive", llm.options, where=where)
        elif target.backend is not None and target.backend != AGENT_BACKEND:
            policy.check(target.backend, target.options, where=f"target {target.name!r}")


def check_credentials(client: Client, project: str, spec: DeploymentSpec) -> None:
    """Refuse a spec whose targets (live, fallback, shadow, a knowledge bot's LLM) read a
    key from a variable the operator did not allow, or name a secret ``project`` lacks.

    The refusal of a variable has the same words whether or not it exists, and names the
    migration (a project secret). The gateway checks again per request: this is the early,
    friendly half, under the allowlist of the settings this client runs with."""
    from apps._knowledge import BOT_BACKEND, bot_options

    allowed = set(client.settings.secret_env_allowlist)
    secrets: set[str] | None = None
    shadow = [spec.shadow.target] if spec.shadow else []
    for target in (*spec.targets, *spec.fallbacks, *shadow):
        keys = [(f"target {target.name!r}", target.api_key_secret, target.api_key_env)]
        if target.backend == BOT_BACKEND:
            llm = bot_options(target).llm
            keys.append((f"target {target.name!r} (its LLM)", llm.api_key_secret, llm.api_key_env))
        for who, secret, env in keys:
            if env is not None and env not in allowed:
                suggestion = suggested_secret_name(env, target.name)
                raise ValidationError(
                    env_not_allowed(who, env, project, suggestion), field="api_key_env"
                )
            if secret is not None:
                if secrets is None:
                    secrets = {info.name for info in client.secrets.list(project)}
                if secret not in secrets:
                    raise ValidationError(
                        secret_not_set(who, secret, project), field="api_key_secret"
                    )


def change_traffic(
    client: Client, project: str, name: str, change: TrafficChange
) -> DeploymentRevision:
    """A new revision of ``name``: its newest revision with ``change`` applied."""
    current = client.registry.deployments.get(project, name)
    spec = retarget(current, change)
    return client.registry.deployments.create(
        project,
        name,
        spec=spec.model_dump(mode="json", exclude_unset=True),
        description=change.summary(),
        model=current.model,
        adapter=current.adapter,
    )


def newest_revisions(client: Client, project: str) -> list[DeploymentRevision]:
    """The newest revision of every deployment of ``project``, by name."""
    newest: dict[str, DeploymentRevision] = {}
    for revision in client.registry.deployments.list(project):  # newest first per name
        newest.setdefault(revision.name, revision)
    return [newest[name] for name in sorted(newest)]
