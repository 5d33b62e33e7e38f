"""``/api`` routes of agent approvals: list the tool calls that wait, and decide them.

A decision is recorded in the store (so it holds across restarts) by a principal the
project's roles allow (``agent:approve``: maintainers and owners). When the last call a run
waits on is decided and the run is a hosted agent's, this gateway resumes it in the
background with the deciding key (its model calls are that key's: quota, DLP, ledger); the
operator token decides but cannot resume (it is no project key): `genai agent resume RUN`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from apps.admin._auth import Scope, Scoped
from genai.errors import ValidationError

__all__ = ["router"]

router = APIRouter(prefix="/api/projects/{project}/agent-approvals", tags=["agents"])
log = logging.getLogger("genai.agents")
_GATEWAY = "http://gateway.internal/v1"  # resumed runs call this gateway in process


class ApprovalView(BaseModel):
    """A tool call that waits (or waited) for a person."""

    run_id: str
    call_id: str
    tool: str
    arguments: dict[str, Any]
    status: str
    edited_arguments: dict[str, Any] | None = None
    reason: str = ""
    decided_by: str | None = None


class Decision(BaseModel):
    """What a person decides about one call: ``approve`` it as the model asked, ``edit``
    (approve with ``arguments``), or ``reject`` it (the model is told ``reason``)."""

    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "reject", "edit"]
    arguments: dict[str, Any] | None = Field(default=None, description="With edit only.")
    reason: str = Field(default="", max_length=2000)


class Decided(BaseModel):
    approval: ApprovalView
    resumed: bool = Field(description="Whether this gateway went on with the hosted run.")
    detail: str = ""


@router.get("")
def list_approvals(
    scope: Scoped, status: Literal["pending", "all"] = "pending"
) -> list[ApprovalView]:
    """The project's calls that wait for a decision (``status=all``: decided ones too)."""
    runner = _runner(scope, None)
    rows = runner.approvals(status=None if status == "all" else "pending")
    return [_view(a) for a in rows]


@router.post("/{run_id}/{call_id}")
async def decide(
    scope: Scoped, request: Request, run_id: str, call_id: str, body: Decision
) -> Decided:
    """Decide one waiting call; the hosted run goes on when nothing else waits."""
    if (body.decision == "edit") != (body.arguments is not None):
        raise ValidationError("give arguments with edit, and only with edit", field="arguments")
    runner = _runner(scope, request)

    def record() -> Any:
        if body.decision == "reject":
            return runner.reject(run_id, call_id, reason=body.reason)
        return runner.approve(run_id, call_id, arguments=body.arguments, reason=body.reason)

    approval = await asyncio.to_thread(record)
    resumed, detail = await asyncio.to_thread(_resumable, scope, runner, run_id)
    if resumed:
        _in_background(request, _resume(scope, request, run_id))
    return Decided(approval=_view(approval), resumed=resumed, detail=detail)


def _runner(scope: Scope, request: Request | None) -> Any:
    from agents import AgentRunner

    http = None
    if request is not None:
        import httpx

        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=request.app), timeout=None)
    return AgentRunner(
        scope.client,
        scope.project,
        gateway=_GATEWAY,
        api_key=scope.acting.key or "",
        http_client=http,
        max_retries=0,
    )


def _resumable(scope: Scope, runner: Any, run_id: str) -> tuple[bool, str]:
    if runner.approvals(run_id=run_id):
        return False, "other calls of the run still wait"
    hosted_by = runner.get(run_id).definition.get("deployment")
    if not hosted_by:
        return False, "not a hosted agent's run: `genai agent resume RUN FILE` goes on"
    if scope.acting.key is None:
        return False, "decided with the operator token: `genai agent resume RUN` goes on"
    return True, f"resuming with deployment {hosted_by}'s agent"


async def _resume(scope: Scope, request: Request, run_id: str) -> None:
    from apps._agent_target import AgentTarget, deployed_agent

    target = scope.api.gateway.stages.targets.get(AgentTarget.name)
    policy = target.policy if isinstance(target, AgentTarget) else None  # the gateway's own
    runner = _runner(scope, request)
    try:
        hosted_by = (await asyncio.to_thread(runner.get, run_id)).definition["deployment"]
        agent = await asyncio.to_thread(
            deployed_agent, scope.client, scope.project, hosted_by, policy
        )
        run = await runner.aresume(run_id, agent)
        log.info("agent run %s resumed after its approvals: %s", run_id, run.status)
    except Exception as error:  # in the background: logged, the run keeps its status
        log.warning("agent run %s could not go on: %s", run_id, error)


def _in_background(request: Request, work: Any) -> None:
    """Keep a reference to the task (the event loop only keeps a weak one)."""
    tasks: set[asyncio.Task[None]] = request.app.state.__dict__.setdefault("agent_resumes", set())
    task = asyncio.get_running_loop().create_task(work)
    tasks.add(task)
    task.add_done_callback(tasks.discard)


def _view(approval: Any) -> ApprovalView:
    return ApprovalView(
        run_id=approval.run_id,
        call_id=approval.call_id,
        tool=approval.tool,
        arguments=dict(approval.arguments),
        status=approval.status,
        edited_arguments=dict(approval.edited_arguments)
        if approval.edited_arguments is not None
        else None,
        reason=approval.reason,
        decided_by=approval.decided_by,
    )
