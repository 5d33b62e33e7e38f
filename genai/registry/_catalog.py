"""Base models, LoRA adapters, prompt versions and deployment revisions."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from genai.errors import LicenseNotAllowed, QuotaExceeded, ValidationError
from genai.registry._refs import add_edge, label
from genai.registry._types import (
    AdapterVersion,
    DeploymentRevision,
    ModelVersion,
    PromptVersionInfo,
)
from genai.registry._versioned import VersionedAPI, WriteScope
from genai.store import schema as t
from genai.tenancy._quotas import load_limits
from genai.tenancy._rbac import Action

__all__ = ["Adapters", "Deployments", "Models", "Prompts"]

_HF_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


def _common(kind: str, row: Any, aliases: list[str]) -> dict[str, Any]:
    return {
        "kind": kind,
        "name": row.name,
        "version": row.version,
        "description": row.description,
        "created_at": row.created_at,
        "created_by": row.created_by,
        "aliases": aliases,
    }


class Models(VersionedAPI[ModelVersion]):
    """Base models: a Hugging Face id or a local directory, a revision and a licence."""

    kind = "model"

    def register(
        self,
        project: str,
        name: str,
        *,
        source: str,
        license: str,
        revision: str = "",
        description: str = "",
        metadata: dict[str, Any] | None = None,
    ) -> ModelVersion:
        """Register a new version of a base model.

        ``source`` is a Hugging Face id (``org/name``) or an existing local directory. A
        licence outside ``GENAI_LICENSE_ALLOWLIST`` is refused.
        """
        allowed = self._ctx.settings.license_allowlist
        lic = license.strip().lower()
        if lic not in allowed:
            raise LicenseNotAllowed(
                f"licence {license!r} of model {name!r} is not on this platform's allowlist "
                f"({', '.join(allowed)}): ask a platform admin to add it to "
                "GENAI_LICENSE_ALLOWLIST, or choose another model"
            )
        self._precheck(project)
        resolved = _resolve_source(source)
        with self._writing(project) as w:
            row = self._add_version(
                w,
                name,
                lambda _: t.Model(
                    source=resolved,
                    revision=revision,
                    license=lic,
                    description=description,
                    metadata_=dict(metadata or {}),
                ),
                source=resolved,
                license=lic,
            )
            return self._info(w.session, row, [])

    def _info(self, session: Session, row: t.Model, aliases: list[str]) -> ModelVersion:
        return ModelVersion(
            **_common(self.kind, row, aliases),
            source=row.source,
            revision=row.revision,
            license=row.license,
            metadata=dict(row.metadata_),
        )


def _resolve_source(source: str) -> str:
    path = Path(source).expanduser()
    if source.strip() and path.exists():  # Path("") is the current directory
        if not path.is_dir():
            raise ValidationError(
                f"model source {source!r} is a file: give the model's directory", field="source"
            )
        return str(path.resolve())
    if _HF_ID.match(source) and not source.startswith((".", "/", "~")):
        return source
    raise ValidationError(
        f"model source {source!r} is neither an existing directory nor a Hugging Face id "
        "like 'org/model-name'",
        field="source",
    )


class Adapters(VersionedAPI[AdapterVersion]):
    """LoRA / QLoRA adapters on a registered base model."""

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
        method: str = "lora",
        run: str | None = None,
        description: str = "",
    ) -> AdapterVersion:
        """Register an adapter version; with ``path`` (a PEFT adapter directory) its files are
        stored as an artifact and rank, alpha and target modules are read from its
        ``adapter_config.json`` (given values must agree with it)."""
        if method not in ("lora", "qlora"):
            raise ValidationError(
                f"unknown adapter method {method!r}: use lora or qlora", field="method"
            )
        self._precheck(project)
        config = _read_adapter_config(Path(path)) if path is not None else {}
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
                    description=description,
                ),
                base_model=label("model", base),
                artifact=artifact,
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

    def _info(self, session: Session, row: t.Adapter, aliases: list[str]) -> AdapterVersion:
        base = session.get(t.Model, row.base_model_id)
        producer = session.get(t.Run, row.run_id) if row.run_id else None
        return AdapterVersion(
            **_common(self.kind, row, aliases),
            base_model=label("model", base),
            method=row.method,
            rank=row.rank,
            alpha=row.alpha,
            target_modules=list(row.target_modules),
            run=producer.uid if producer else None,
            artifact=row.artifact,
        )


def _read_adapter_config(path: Path) -> dict[str, Any]:
    config = path / "adapter_config.json"
    if not config.is_file():
        raise ValidationError(
            f"{path} is not a PEFT adapter directory: it has no adapter_config.json", field="path"
        )
    try:
        data = json.loads(config.read_text())
    except json.JSONDecodeError as error:
        raise ValidationError(f"{config} is not valid JSON: {error}", field="path") from None
    if not isinstance(data, dict) or str(data.get("peft_type", "LORA")).upper() != "LORA":
        raise ValidationError(f"{config} does not describe a LoRA adapter", field="path")
    return data


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
            **_common(self.kind, row, aliases),
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
        with self._writing(project, Action.DEPLOYMENT_WRITE) as w:
            base = w.resolve(model, "model") if model is not None else None
            lora = w.resolve(adapter, "adapter") if adapter is not None else None
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

    def _info(self, session: Session, row: t.Deployment, aliases: list[str]) -> DeploymentRevision:
        base = session.get(t.Model, row.model_id) if row.model_id else None
        lora = session.get(t.Adapter, row.adapter_id) if row.adapter_id else None
        return DeploymentRevision(
            **_common(self.kind, row, aliases),
            model=label("model", base) if base else None,
            adapter=label("adapter", lora) if lora else None,
            spec=dict(row.spec),
        )
