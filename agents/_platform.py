"""Platform tools: what an agent may ask the platform itself, always as the caller.

    tools:
      - platform: kb_search        # a knowledge base of the project, with citations
        kb: docs
      - platform: deployments      # the project's deployments and their targets
      - platform: adapters         # registered adapters and what they were trained from
      - platform: eval_runs        # eval runs with their scores
      - platform: lineage          # what a registry entry came from and what used it
      - platform: adapter_card     # the facts of an adapter's model card, from its lineage
      - platform: usage            # requests, tokens and cost by model and day

Each tool is built for one run from the caller's :class:`genai.Client`, so it can read only
what the caller may read (``registry:read`` / ``usage:read`` of the run's project): another
project's knowledge bases, runs or usage are not found, exactly as through the API. All of
them only read.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from agents._tools import Tool, function_tool
from genai.errors import ValidationError

if TYPE_CHECKING:
    from genai import Client
    from genai.registry import DeploymentRevision

__all__ = ["PLATFORM_TOOLS", "PlatformTool", "platform_tools"]


@dataclass(frozen=True)
class PlatformTool:
    """A platform tool an agent names (``kind``) with its options (``kb`` for kb_search)."""

    kind: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in PLATFORM_TOOLS:
            raise ValidationError(
                f"unknown platform tool {self.kind!r}: use one of {', '.join(PLATFORM_TOOLS)}",
                field="platform",
            )
        allowed = {"kb", "k"} if self.kind == "kb_search" else set()
        unknown = set(self.options) - allowed
        if unknown:
            raise ValidationError(
                f"platform tool {self.kind!r} takes no option {sorted(unknown)[0]!r}",
                field="platform",
            )
        if self.kind == "kb_search" and not isinstance(self.options.get("kb"), str):
            raise ValidationError("platform tool kb_search needs kb: NAME", field="platform")


def platform_tools(client: Client, project: str, specs: list[PlatformTool]) -> list[Tool]:
    """The tools of ``specs`` bound to ``client`` (the caller) in ``project``."""
    return [PLATFORM_TOOLS[spec.kind](client, project, spec.options) for spec in specs]


def _json(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


def _kb_search(client: Client, project: str, options: Mapping[str, Any]) -> Tool:
    from rag import KnowledgeBases

    name = str(options["kb"])
    k = int(options.get("k", 4))

    async def kb_search(query: str) -> str:
        """Search the knowledge base for passages about a question; cite them as [n].

        Args:
            query: What to look for, in words.
        """

        def run() -> list[dict[str, Any]]:
            chunks = KnowledgeBases(client).get(project, name).retrieve(query, k=k)
            return [
                {"n": n, "source": c.metadata.citation, "text": c.text}
                for n, c in enumerate(chunks, 1)
            ]

        return _json(await asyncio.to_thread(run))

    return function_tool(kb_search, description=f"Search the knowledge base {name!r}; cite [n].")


def _deployments(client: Client, project: str, options: Mapping[str, Any]) -> Tool:
    def deployments() -> str:
        """The project's deployments: their newest revision, targets and traffic."""
        rows = client.registry.deployments.list(project)
        return _json([_deployment(row) for row in rows])

    return function_tool(deployments)


def _deployment(row: DeploymentRevision) -> dict[str, Any]:
    """A deployment as its users speak of it: what each target runs and its traffic share
    (not the whole spec: an agent target's definition, a bot's prompt)."""
    targets = [t for t in row.spec.get("targets", []) if isinstance(t, dict)]
    total = sum(float(t.get("weight", 1.0)) for t in targets) or 1.0
    shown = []
    for target in targets:
        runs = target.get("backend") or target.get("model") or target.get("url")
        share = (
            f", {float(target.get('weight', 1.0)) / total:.0%} of traffic"
            if len(targets) > 1
            else ""
        )
        adapter = f" + adapter {target['adapter']}" if target.get("adapter") else ""
        shown.append(f"{target.get('name')}: {runs}{adapter}{share}")
    return {
        "name": row.name,
        "revision": row.version,
        "targets": shown,
        "description": row.description,
        "updated_at": row.created_at,
    }


def _adapters(client: Client, project: str, options: Mapping[str, Any]) -> Tool:
    def adapters() -> str:
        """The project's registered adapters: base model, version, training run, metrics."""
        return _json([_plain(row) for row in client.registry.adapters.list(project)])

    return function_tool(adapters)


def _eval_runs(client: Client, project: str, options: Mapping[str, Any]) -> Tool:
    def eval_runs(limit: int = 10) -> str:
        """The project's newest eval runs with their scores.

        Args:
            limit: How many, newest first.
        """
        return _json([_plain(row) for row in client.registry.evals.list(project)[:limit]])

    return function_tool(eval_runs)


def _lineage(client: Client, project: str, options: Mapping[str, Any]) -> Tool:
    def lineage(ref: str) -> str:
        """What a registry entry came from and what used it (datasets, runs, adapters,
        deployments, eval runs).

        Args:
            ref: The entry, e.g. "adapter:support@2" or "dataset:faq@1".
        """
        return _json(_plain(client.registry.lineage(project, ref)))

    return function_tool(lineage)


def _adapter_card(client: Client, project: str, options: Mapping[str, Any]) -> Tool:
    def adapter_card(adapter: str) -> str:
        """The facts a model card of an adapter states, from the registry and its lineage:
        the adapter (base model, method, rank, chat template), the training run (params and
        final metrics), the datasets it was trained on, and what was made from it
        (deployments, eval runs with their scores). Draft the card from these facts only.

        Args:
            adapter: The adapter, "NAME" (its newest version) or "NAME@VERSION".
        """
        info = client.registry.adapters.get(project, adapter)
        ref = f"adapter:{info.name}@{info.version}"
        graph = client.registry.lineage(project, ref)
        card: dict[str, Any] = {
            "adapter": {
                "ref": ref,
                "base_model": info.base_model,
                "method": info.method,
                "rank": info.rank,
                "alpha": info.alpha,
                "target_modules": info.target_modules,
                "trained_with_chat_template": bool(info.chat_template),
                "vllm_problems": info.lint,
                "created_by": info.created_by,
                "created_at": info.created_at,
            },
            "made_from": graph.ancestors,
            "used_by": graph.descendants,
        }
        if info.run:
            run = client.registry.runs.get(project, info.run.removeprefix("run:"))
            card["training_run"] = {
                "ref": run.ref,
                "status": run.status,
                "params": run.params,
                "metrics": run.metrics,
            }
        evals = [e for e in client.registry.evals.list(project) if e.ref in graph.descendants]
        card["eval_runs"] = [_plain(e) for e in evals]
        return _json(card)

    return function_tool(adapter_card)


def _usage(client: Client, project: str, options: Mapping[str, Any]) -> Tool:
    def usage(days: int = 7) -> str:
        """How much the project used and spent: requests, tokens and cost in USD, by model,
        over the last days.

        Args:
            days: How many days back, today included.
        """
        since = date.today() - timedelta(days=max(days, 1) - 1)
        return _json(_plain(client.usage.report(project, since=since)))

    return function_tool(usage)


def _plain(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if hasattr(value, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


#: The platform tools by name (see the module's docstring).
PLATFORM_TOOLS: dict[str, Callable[[Client, str, Mapping[str, Any]], Tool]] = {
    "kb_search": _kb_search,
    "deployments": _deployments,
    "adapters": _adapters,
    "eval_runs": _eval_runs,
    "lineage": _lineage,
    "adapter_card": _adapter_card,
    "usage": _usage,
}
