"""kopf's handlers for GenAIDeployment, each a call of :meth:`Operator.reconcile`.

create, update (of the spec), resume (the operator restarted) and a resync timer (pods come
and go, adapters must be loaded on new ones, readiness changes) all run the same idempotent
step and write its status; delete (behind kopf's finalizer) removes the deployment's
objects. A refused spec is written as a status and not retried until it changes; a failing
API server or registry is retried with backoff.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from apps.k8s._operator import Operator
from genai.deploy import GROUP, VERSION
from genai.errors import BackendError

__all__ = ["build_registry", "run_operator"]

Logger = logging.Logger | logging.LoggerAdapter[Any]

PLURAL = "genaideployments"


def build_registry(operator: Operator, *, resync_s: float = 30.0) -> Any:
    """A kopf registry whose handlers drive ``operator``."""
    import kopf

    registry = kopf.OperatorRegistry()
    resource = (GROUP, VERSION, PLURAL)

    async def step(body: Any, patch: Any, logger: Logger) -> None:
        try:
            status = await operator.reconcile(body)
        except BackendError as error:
            logger.warning("reconcile failed, will retry: %s", error)
            raise kopf.TemporaryError(str(error), delay=10 if error.retryable else 60) from None
        patch.status.update(status)
        ready = next((c for c in status["conditions"] if c["type"] == "Ready"), None)
        if ready is not None:
            logger.info("%s: %s", ready["reason"], ready["message"])

    @kopf.on.resume(*resource, registry=registry)
    @kopf.on.create(*resource, registry=registry)
    @kopf.on.update(*resource, field="spec", registry=registry)
    async def changed(body: Any, patch: Any, logger: Logger, **_: Any) -> None:
        await step(body, patch, logger)

    @kopf.timer(*resource, interval=resync_s, initial_delay=resync_s, registry=registry)
    async def resync(body: Any, patch: Any, logger: Logger, **_: Any) -> None:
        if not body.get("metadata", {}).get("deletionTimestamp"):
            await step(body, patch, logger)

    @kopf.on.delete(*resource, registry=registry)
    async def deleted(body: Any, logger: Logger, **_: Any) -> None:
        await operator.finalize(body)
        logger.info("removed the objects of %s", body.get("metadata", {}).get("name"))

    return registry


async def run_operator(
    operator: Operator,
    *,
    namespaces: list[str] | None = None,
    resync_s: float = 30.0,
    login: Any = None,
    stop_flag: asyncio.Event | threading.Event | None = None,
    ready_flag: asyncio.Event | threading.Event | None = None,
    liveness_endpoint: str | None = None,
    scan: bool = True,
) -> None:
    """Run kopf until ``stop_flag``: every namespace, or the ``namespaces`` given.
    ``login`` is a ``kopf.ConnectionInfo`` (default: kopf's own, from the pod's service
    account or a kubeconfig). ``scan=False`` takes the namespaces as given instead of
    listing and watching them (for an operator that may not list namespaces)."""
    import kopf

    registry = build_registry(operator, resync_s=resync_s)
    if login is not None:

        @kopf.on.login(registry=registry)
        def _login(**_: Any) -> Any:
            return login

    settings = kopf.OperatorSettings()
    settings.posting.level = logging.WARNING  # events for problems, not for every step
    settings.watching.server_timeout = 300
    settings.scanning.disabled = not scan
    await kopf.operator(
        registry=registry,
        settings=settings,
        standalone=True,
        clusterwide=not namespaces,
        namespaces=namespaces or (),
        stop_flag=stop_flag,
        ready_flag=ready_flag,
        liveness_endpoint=liveness_endpoint,
    )
