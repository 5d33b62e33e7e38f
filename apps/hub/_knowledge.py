"""The Hub's knowledge-base pages: each base's facts, and a search box whose results are
the chunks a knowledge bot would cite (source, page, headings, text)."""

from __future__ import annotations

import threading
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from apps.hub._web import HubState, Page, page_of, render
from genai.errors import MissingDependencyError

__all__ = ["router"]

router = APIRouter()
_LOCK = threading.Lock()
MAX_QUERY = 2000


def _kbs(page: Page) -> Any:
    """The knowledge bases as the page's caller sees them, sharing one root per Hub (its
    Chroma client, BM25 indexes and the gateway's embedding model, loaded once)."""
    try:
        from rag import KnowledgeBases
    except ImportError as error:
        raise MissingDependencyError("rag", extra="rag", purpose="Knowledge bases") from error
    hub: HubState = page.hub
    with _LOCK:
        root = hub.extras.get("kbs")
        if root is None:
            embedder = hub.gateway.stages.embedder
            root = KnowledgeBases(page.scope.client, embedder=embedder)
            hub.extras["kbs"] = root
    return root.for_client(page.scope.client)


@router.get("/p/{project}/knowledge", include_in_schema=False)
def knowledge_bases(request: Request, project: str) -> Response:
    page = page_of(request, project)
    bases = _kbs(page).list(page.project)
    return render(request, "knowledge.html", page=page, section="knowledge", bases=bases)


Search = Annotated[str, Query(max_length=MAX_QUERY)]
TopK = Annotated[int, Query(ge=1, le=20)]


@router.get("/p/{project}/knowledge/{name}", include_in_schema=False)
def knowledge_base(
    request: Request, project: str, name: str, q: Search = "", k: TopK = 5
) -> Response:
    """One knowledge base; with ``q``, the ``k`` chunks that best answer it."""
    page = page_of(request, project)
    kbs = _kbs(page)
    info = kbs.info(page.project, name)
    query = q.strip()
    chunks = kbs.get(page.project, name).retrieve(query, k=k) if query else []
    return render(
        request,
        "knowledge_base.html",
        page=page,
        section="knowledge",
        info=info,
        q=query,
        k=k,
        chunks=chunks,
    )
