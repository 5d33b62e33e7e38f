"""The Hub's forms that change something. Each one checks the session's CSRF token, then
calls the same service as the CLI and ``/api`` (so ``authorize()`` decides, the change is in
the audit log, and a viewer is refused exactly as the API refuses them)."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from apps.hub._signin import read_form
from apps.hub._web import call_gateway, check_csrf, page_of, render, session_of, with_headers
from genai.errors import ValidationError

__all__ = ["router"]

router = APIRouter()
_PAST = {"approve": "approved", "reject": "rejected"}


def _version(text: str | None) -> int:
    if not text or not text.isascii() or not text.isdigit() or not 0 < int(text) < 2**31:
        raise ValidationError(f"version must be a version number, not {text!r}", field="version")
    return int(text)


@router.post("/p/{project}/prompts/{name}/label", include_in_schema=False)
async def move_label(request: Request, project: str, name: str) -> Response:
    """Point a label (``production``, ``staging``...) at one version of the prompt."""
    session = session_of(request)
    form = await read_form(request)
    check_csrf(session, form.get("csrf"))
    version = _version(form.get("version"))
    label = (form.get("label") or "").strip()
    if not label:
        raise ValidationError("name the label to move (e.g. production)", field="label")

    def move() -> str:
        from prompts import PromptHub

        page = page_of(request, project)
        PromptHub(page.scope.client, page.project, ttl_s=0.0).label(f"{name}@{version}", label)
        return page.hub.url("p", page.project, "prompts", name)

    target = await run_in_threadpool(move)
    return with_headers(RedirectResponse(target + "#labels", status_code=303))


@router.post("/p/{project}/agents/approvals/{run_id}/{call_id}", include_in_schema=False)
async def decide(request: Request, project: str, run_id: str, call_id: str) -> Response:
    """Approve or reject a tool call an agent waits on, through the admin API's own route
    (``agent:approve``: maintainers and owners; a hosted run then goes on by itself)."""
    session = session_of(request)
    form = await read_form(request)
    check_csrf(session, form.get("csrf"))
    decision = form.get("decision")
    if decision not in ("approve", "reject"):
        raise ValidationError("decision is approve or reject", field="decision")
    page = await run_in_threadpool(page_of, request, project)
    path = f"/api/projects/{quote(page.project, safe='')}/agent-approvals/"
    path += f"{quote(run_id, safe='')}/{quote(call_id, safe='')}"
    body = {"decision": decision, "reason": (form.get("reason") or "")[:2000]}
    status, answer = await call_gateway(page.hub, path, page.session.key, body)
    if status != 200:
        message = str((answer.get("error") or {}).get("message") or f"HTTP {status}")
        titles = {403: "Not allowed", 404: "Not found", 409: "Already decided"}
        return render(
            request,
            "error.html",
            status=status,
            title=titles.get(status, "Refused"),
            message=message,
        )
    target = page.hub.url("p", page.project, "agents", decided=f"{_PAST[decision]} {call_id}")
    return with_headers(RedirectResponse(target, status_code=303))
