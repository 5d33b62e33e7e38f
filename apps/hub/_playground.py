"""The prompt playground: two versions of one prompt run side by side against a deployment.

Each version goes to the gateway's own ``/v1/chat/completions`` as the session's key, the
way an application names a prompt (``{"model", "prompt": "NAME@VERSION", "variables"}``):
the gateway renders it in the caller's project, and quotas, DLP, the cache and the usage
ledger (with the prompt version) apply as to any API call. The Hub renders the versions
only to show what was sent. Answers are model output: shown as text, never markup.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from apps.deployments import newest_revisions
from apps.hub._signin import read_form
from apps.hub._web import Page, call_gateway, check_csrf, page_of, render, session_of
from genai.errors import GenAIError, ValidationError

__all__ = ["router"]

router = APIRouter()
MAX_VALUE = 20_000  # characters of one variable's value


@dataclass(frozen=True)
class Side:
    """One version's run: what the Hub rendered, and the gateway's answer or its refusal."""

    version: int
    sent: str
    answer: str = ""
    error: str = ""
    tokens: str = ""


def _form(page: Page, name: str) -> dict[str, Any]:
    """The versions (newest first), their variables and the project's deployments."""
    from prompts import PromptHub

    versions = PromptHub(page.scope.client, page.project, ttl_s=0.0).history(name)
    variables = sorted({v for version in versions for v in version.template.variables})
    deployments = [r.name for r in newest_revisions(page.scope.client, page.project)]
    return {"versions": versions, "variables": variables, "deployments": deployments}


@router.get("/p/{project}/prompts/{name}/playground", include_in_schema=False)
def playground(request: Request, project: str, name: str) -> Response:
    page = page_of(request, project)
    form = _form(page, name)
    numbers = [v.version for v in form["versions"]]
    chosen = {"a": numbers[min(1, len(numbers) - 1)], "b": numbers[0], "deployment": ""}
    return _shown_page(request, page, name, form, chosen, {}, [])


@router.post("/p/{project}/prompts/{name}/playground", include_in_schema=False)
async def playground_run(request: Request, project: str, name: str) -> Response:
    """Run versions ``a`` and ``b`` with the form's variables on ``deployment``, at once."""
    session = session_of(request)
    given = await read_form(request)
    check_csrf(session, given.get("csrf"))
    page = await run_in_threadpool(page_of, request, project)
    form = await run_in_threadpool(_form, page, name)
    by_number = {v.version: v for v in form["versions"]}
    chosen = {key: given.get(key) or "" for key in ("a", "b", "deployment")}
    numbers = [_version(chosen[key], by_number, key) for key in ("a", "b")]
    if chosen["deployment"] not in form["deployments"]:
        raise ValidationError("choose one of the project's deployments", field="deployment")
    # an empty box is a variable not given: the template's default, or its error
    values = {v: text for v in form["variables"] if (text := given.get(f"var.{v}"))}
    if any(len(text) > MAX_VALUE for text in values.values()):
        raise ValidationError(f"a variable's value is at most {MAX_VALUE} characters", field="var")
    sides = await asyncio.gather(
        *(_run(page, name, by_number[n], chosen["deployment"], values) for n in numbers)
    )
    return _shown_page(request, page, name, form, chosen, values, list(sides))


def _shown_page(
    request: Request,
    page: Page,
    name: str,
    form: dict[str, Any],
    chosen: dict[str, Any],
    values: dict[str, str],
    sides: list[Side],
) -> Response:
    """The playground: the form as chosen, and the two answers once run."""
    return render(
        request,
        "playground.html",
        page=page,
        section="prompts",
        name=name,
        chosen=chosen,
        values=values,
        sides=sides,
        **form,
    )


def _version(text: str, versions: dict[int, Any], field: str) -> int:
    if not text.isascii() or not text.isdigit() or int(text) not in versions:
        raise ValidationError(f"{field} must be a version of this prompt", field=field)
    return int(text)


async def _run(
    page: Page, name: str, version: Any, deployment: str, values: dict[str, str]
) -> Side:
    wanted = {k: v for k, v in values.items() if k in version.template.variables}
    try:
        sent = _shown(version.render(wanted))
    except GenAIError as error:  # a missing variable: the gateway would say the same
        return Side(version.version, "", error=str(error))
    body = {"model": deployment, "prompt": f"{name}@{version.version}", "variables": wanted}
    status, answer = await call_gateway(page.hub, "/v1/chat/completions", page.session.key, body)
    if status != 200:
        message = str((answer.get("error") or {}).get("message") or f"HTTP {status}")
        return Side(version.version, sent, error=f"{status}: {message}")
    choice = (answer.get("choices") or [{}])[0]
    usage = answer.get("usage") or {}
    return Side(
        version.version,
        sent,
        answer=str((choice.get("message") or {}).get("content") or ""),
        tokens=f"{usage.get('prompt_tokens', '?')} in, {usage.get('completion_tokens', '?')} out",
    )


def _shown(rendered: Any) -> str:
    """Rendered chat messages (or text) as plain text: ``role: content`` per message."""
    if isinstance(rendered, str):
        return rendered
    return "\n\n".join(f"{m['role']}: {m['content']}" for m in rendered)
