"""LoRA adapters, prompt versions and deployment revisions (base models: _models.py)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from genai.errors import QuotaExceeded, ValidationError
from genai.models._adapter_lint import vllm_adapter_problems
from genai.registry._adapter_files import METHODS, AdapterFiles, read_adapter_dir
from genai.registry._batch import load_by_id
from genai.registry._refs import add_edge, label
from genai.registry._types import (
    AdapterVersion,
    DeploymentRevision,
    PromptVersionInfo,
)
from genai.registry._versioned import VersionedAPI, WriteScope
from genai.store import schema as t
from genai.tenancy._quotas import load_limits
from genai.tenancy._rbac import Action

__all__ = ["Adapters", "Deployments", "Prompts", "common_fields"]


def common_fields(kind: str, row: Any, aliases: list[str]) -> dict[str, Any]:
    return {
        "kind": kind,
        "name": row.name,
        "version": row.version,
        "description": row.description,
        "created_at": row.created_at,
        "created_by": row.created_by,
        "aliases": aliases,
    }


class Adapters(VersionedAPI[AdapterVersion]):
    """LoRA adapters (lora, qlora, dora, rslora) on a registered base model."""

    kind = "adapter"

    def register(
        self,
        project: str,
        name: str,
        *,
        base_model: str,
        path: str | Path | None = None,
        rank: int | None = None,
        alpha: float | None = None,
        target_modules: Sequence[str] | None = None,
        method: str | None = None,
        run: str | None = None,
        description: str = "",
        metadata: Mapping[str, Any] | None = None,
    ) -> AdapterVersion:
        """Register an adapter version; with ``path`` (a PEFT adapter directory) its files are
        stored as an artifact and rank, alpha, target modules and method (``use_dora`` →
        dora, ``use_rslora`` → rslora) are read from its ``adapter_config.json`` (given
        values must agree with it), the chat template from its ``chat_template.jinja`` or
        ``tokenizer_config.json``, and the hash of its ``tokenizer.json``.

        ``lint`` records what vLLM would refuse in it (:func:`genai.models.
        vllm_adapter_problems`): registering succeeds, deploying it on vLLM does not.
        ``metadata`` is free-form JSON (training settings and the like)."""
        if method is not None and method not in METHODS:
            raise ValidationError(
                f"unknown adapter method {method!r}: use one of {', '.join(METHODS)}",
                field="method",
            )
        extra = _json_object(metadata, field="metadata")
        self._precheck(project)
        files = read_adapter_dir(Path(path)) if path is not None else None
        config = files.config if files else {}
        method = _agree("method", method, files.method if files else None)
        if files is not None and files.method is None and method in ("dora", "rslora"):
            _agree("method", method, "lora")  # the file says plain LoRA
        rank = _agree("rank", rank, config.get("r"))
        alpha = _agree("alpha", alpha, config.get("lora_alpha"))
        targets = _agree(
            "target_modules", _targets(target_modules), _targets(config.get("target_modules"))
        )
        if rank is None or alpha is None or not targets:
            raise ValidationError(
                "an adapter needs rank, alpha and target_modules: give them, or a path to a PEFT "
                "adapter directory whose adapter_config.json has them",
                field="rank",
            )
        if int(rank) < 1:
            raise ValidationError(f"rank must be at least 1, got {rank}", field="rank")
        method = method or "lora"
        lint = _lint(files, method=method, rank=int(rank), targets=targets)
        artifact = self._ctx.artifacts.put_dir(path) if path is not None else ""
        with self._writing(project) as w:
            base = w.resolve(base_model, "model")
            producer = w.resolve(run, "run") if run is not None else None
            row = self._add_version(
                w,
                name,
                lambda _: t.Adapter(
                    base_model_id=base.id,
                    method=method,
                    rank=int(rank),
                    alpha=float(alpha),
                    target_modules=list(targets),
                    run_id=producer.id if producer else None,
                    artifact=artifact,
                    chat_template=files.chat_template if files else "",
                    tokenizer_sha256=files.tokenizer_sha256 if files else "",
                    lint=lint,
                    metadata_=extra,
                    description=description,
                ),
                base_model=label("model", base),
                artifact=artifact,
                **({"lint": len(lint)} if lint else {}),
            )
            add_edge(w.session, w.project.id, ("model", base), ("adapter", row), "base model")
            if producer is not None:
                add_edge(w.session, w.project.id, ("run", producer), ("adapter", row), "produced")
            return self._info(w.session, row, [])

    def download(self, project: str, ref: str, dest: str | Path) -> Path:
        """Materialise an adapter's files at ``dest`` (every byte checked against its hash)."""
        info = self.get(project, ref)
        if not info.artifact:
            raise ValidationError(f"{info.ref} was registered without files", field="ref")
        return self._ctx.artifacts.get_dir(info.artifact, dest)

    def _prefetch(self, session: Session, rows: Sequence[Any]) -> object:
        return (
            load_by_id(session, t.Model, {r.base_model_id for r in rows}),
            load_by_id(session, t.Run, {r.run_id for r in rows}),
        )

    def _info(self, session: Session, row: t.Adapter, aliases: list[str]) -> AdapterVersion:
        base = session.get(t.Model, row.base_model_id)
        producer = session.get(t.Run, row.run_id) if row.run_id else None
        return AdapterVersion(
            **common_fields(self.kind, row, aliases),
            base_model=label("model", base),
            method=row.method,
            rank=row.rank,
            alpha=row.alpha,
            target_modules=list(row.target_modules),
            run=producer.uid if producer else None,
            artifact=row.artifact,
            chat_template=row.chat_template,
            tokenizer_sha256=row.tokenizer_sha256,
            lint=list(row.lint),
            metadata=dict(row.metadata_),
        )


def _lint(files: AdapterFiles | None, *, method: str, rank: int, targets: list[str]) -> list[str]:
    """What vLLM would refuse: from the directory's config and names, else from the values
    given (an adapter registered without files)."""
    if files is not None:
        return files.lint
    return vllm_adapter_problems(
        {"r": rank, "target_modules": targets, "use_dora": method == "dora"}
    )


def _json_object(value: Mapping[str, Any] | None, *, field: str) -> dict[str, Any]:
    out = dict(value or {})
    try:
        json.dumps(out, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValidationError(f"{field} must be plain JSON: {error}", field=field) from None
    return out


def _targets(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    return sorted(str(v) for v in value)


def _agree(field: str, given: Any, found: Any) -> Any:
    if given is not None and found is not None and given != found:
        raise ValidationError(
            f"{field}={given!r} disagrees with the adapter's adapter_config.json ({found!r}): "
            "leave it out to take the file's value",
            field=field,
        )
    return given if given is not None else found


class Prompts(VersionedAPI[PromptVersionInfo]):
    """Prompt versions (the prompts package builds templating and labels on these)."""

    kind = "prompt"

    def register(
        self,
        project: str,
        name: str,
        *,
        template: str | list[dict[str, str]],
        variables: dict[str, Any] | None = None,
        message: str = "",
    ) -> PromptVersionInfo:
        """A new version, unless the content equals the newest version's (then that one)."""
        kind = "text" if isinstance(template, str) else "chat"
        body = {"template": template, "variables": dict(variables or {})}
        digest = hashlib.sha256(
            json.dumps({"kind": kind, **body}, sort_keys=True).encode()
        ).hexdigest()
        with self._writing(project) as w:
            latest = w.session.scalars(
                select(t.PromptVersion)
                .where(t.PromptVersion.project_id == w.project.id, t.PromptVersion.name == name)
                .order_by(t.PromptVersion.version.desc())
                .limit(1)
            ).one_or_none()
            if latest is not None and latest.content_hash == digest:
                return self._info(w.session, latest, [])
            row = self._add_version(
                w,
                name,
                lambda _: t.PromptVersion(
                    kind=kind, template=body, content_hash=digest, description=message
                ),
                content_hash=digest,
            )
            return self._info(w.session, row, [])

    def _info(
        self, session: Session, row: t.PromptVersion, aliases: list[str]
    ) -> PromptVersionInfo:
        return PromptVersionInfo(
            **common_fields(self.kind, row, aliases),
            template_kind=row.kind,
            template=dict(row.template),
            content_hash=row.content_hash,
        )


class Deployments(VersionedAPI[DeploymentRevision]):
    """Deployment revisions: each change of what a deployment serves is a new revision."""

    kind = "deployment"

    def create(
        self,
        project: str,
        name: str,
        *,
        model: str | None = None,
        adapter: str | None = None,
        spec: dict[str, Any] | None = None,
        description: str = "",
    ) -> DeploymentRevision:
        """A new revision of ``name``. An adapter vLLM cannot serve (its ``lint``) is
        refused when a vLLM target would serve it: the adapter given, or one that a
        target's ``options.adapters`` names by reference (``adapter:NAME@VERSION``)."""
        with self._writing(project, Action.DEPLOYMENT_WRITE) as w:
            base = w.resolve(model, "model") if model is not None else None
            lora = w.resolve(adapter, "adapter") if adapter is not None else None
            _check_vllm_adapters(w, lora, spec or {})
            if lora is not None:
                self._check_adapter_slots(w, name, lora)
            row = self._add_version(
                w,
                name,
                lambda _: t.Deployment(
                    model_id=base.id if base else None,
                    adapter_id=lora.id if lora else None,
                    spec=dict(spec or {}),
                    description=description,
                ),
            )
            if base is not None:
                add_edge(w.session, w.project.id, ("model", base), ("deployment", row), "serves")
            if lora is not None:
                add_edge(w.session, w.project.id, ("adapter", lora), ("deployment", row), "serves")
            return self._info(w.session, row, [])

    def _check_adapter_slots(self, w: WriteScope, name: str, lora: t.Adapter) -> None:
        """An adapter slot is one adapter name served by the newest revision of some
        deployment of the project; ``adapter_slots`` caps how many are in use."""
        slots = load_limits(w.session, w.project.id).adapter_slots
        if slots is None:
            return
        newest = (
            select(t.Deployment.name, func.max(t.Deployment.version).label("v"))
            .where(t.Deployment.project_id == w.project.id, t.Deployment.name != name)
            .group_by(t.Deployment.name)
            .subquery()
        )
        in_use = set(
            w.session.scalars(
                select(t.Adapter.name)
                .join(t.Deployment, t.Deployment.adapter_id == t.Adapter.id)
                .join(
                    newest,
                    (newest.c.name == t.Deployment.name) & (newest.c.v == t.Deployment.version),
                )
                .where(t.Deployment.project_id == w.project.id)
            )
        )
        if lora.name not in in_use and len(in_use) + 1 > slots:
            raise QuotaExceeded(
                f"project {w.project.name!r} uses all {slots} of its adapter slots "
                f"({', '.join(sorted(in_use))}): retire a deployment's adapter, or ask an owner "
                "to raise adapter_slots (`genai quota set`)"
            )

    def _prefetch(self, session: Session, rows: Sequence[Any]) -> object:
        return (
            load_by_id(session, t.Model, {r.model_id for r in rows}),
            load_by_id(session, t.Adapter, {r.adapter_id for r in rows}),
        )

    def _info(self, session: Session, row: t.Deployment, aliases: list[str]) -> DeploymentRevision:
        base = session.get(t.Model, row.model_id) if row.model_id else None
        lora = session.get(t.Adapter, row.adapter_id) if row.adapter_id else None
        return DeploymentRevision(
            **common_fields(self.kind, row, aliases),
            model=label("model", base) if base else None,
            adapter=label("adapter", lora) if lora else None,
            spec=dict(row.spec),
        )


def _vllm_targets(spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The targets of a deployment spec (live, fallback, shadow) that run vLLM."""
    shadow = spec.get("shadow")
    found = [*(spec.get("targets") or []), *(spec.get("fallbacks") or [])]
    if isinstance(shadow, Mapping) and isinstance(shadow.get("target"), Mapping):
        found.append(shadow["target"])
    whole = spec.get("backend") == "vllm"  # a spec for one backend (a model server's)
    return [
        target
        for target in found
        if isinstance(target, Mapping) and (whole or target.get("backend") == "vllm")
    ] or ([spec] if whole else [])


def _check_vllm_adapters(w: WriteScope, lora: t.Adapter | None, spec: Mapping[str, Any]) -> None:
    targets = _vllm_targets(spec)
    if not targets:
        return
    served = [lora] if lora is not None else []
    for target in targets:
        options = target.get("options")
        named = options.get("adapters") if isinstance(options, Mapping) else None
        refs = named.values() if isinstance(named, Mapping) else ()
        served.extend(
            w.resolve(ref, "adapter")
            for ref in refs
            if isinstance(ref, str) and ref.startswith("adapter:")
        )
    for row in served:
        if row.lint:
            where = ", ".join(repr(str(target.get("name", "vllm"))) for target in targets)
            problems = " ".join(f"({i}) {p}" for i, p in enumerate(row.lint, 1))
            raise ValidationError(
                f"{label('adapter', row)} cannot be served by vLLM (target {where}): "
                f"{problems} Serve it with the transformers backend, or fix it and register "
                "a new version.",
                field="adapter",
            )
