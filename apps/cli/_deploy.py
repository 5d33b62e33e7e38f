"""``genai deploy apply|list|show|traffic``: what a gateway model name serves, revision by
revision. Every change is a new deployment revision in the registry (maintainers and
owners); gateways route to it within ``GENAI_GATEWAY_ROUTE_TTL_S``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from apps.cli._app import JsonOpt, ProjectOpt, app, client
from apps.cli._output import console, print_json, show_table, when
from genai.errors import MissingDependencyError, ValidationError

__all__ = ["deploy_app", "load_spec", "parse_weights"]

deploy_app = typer.Typer(
    help="Deployments: apply a spec, list, show, and change traffic (canary, A/B, shadow).",
    no_args_is_help=True,
)
app.add_typer(deploy_app, name="deploy")

NameOpt = typer.Option(..., "--name", "-n", help="The deployment (the model name callers use).")


@deploy_app.command("apply")
def apply(
    file: Path = typer.Argument(..., help="The spec: a YAML or JSON file."),
    project: str = ProjectOpt,
    name: str = NameOpt,
    description: str = typer.Option("", "--description", "-d", help="What changed."),
    model: str | None = typer.Option(None, help="The registered base model served (lineage)."),
    adapter: str | None = typer.Option(None, help="The registered adapter served (lineage)."),
    as_json: bool = JsonOpt,
) -> None:
    """Apply a spec: a new revision of the deployment."""
    from apps.deployments import apply_spec

    spec = load_spec(file)
    if spec.get("kind") == "GenAIDeployment":
        raise ValidationError(
            f"{file} is a Kubernetes GenAIDeployment: `kubectl apply -f` it where the operator "
            "runs (the operator registers this deployment's revisions as they get ready), or "
            f"print its manifests with `genai k8s render {file} -p {project}`",
            field="kind",
        )
    with client() as c:
        revision = apply_spec(
            c, project, name, spec, description=description, model=model, adapter=adapter
        )
    if as_json:
        print_json(revision)
        return
    console.print(
        f"[green]✓[/] deployment {name} revision {revision.version} in {project}: "
        f"{_targets(revision.spec)}"
    )


@deploy_app.command("list")
def list_(project: str = ProjectOpt, as_json: bool = JsonOpt) -> None:
    """The newest revision of every deployment of the project."""
    from apps.deployments import newest_revisions

    with client() as c:
        rows = newest_revisions(c, project)
    show_table(
        f"deployments of {project}",
        rows,
        [
            ("name", lambda d: d.name),
            ("revision", lambda d: d.version),
            ("policy", lambda d: d.spec.get("policy", "weighted")),
            ("targets", lambda d: _targets(d.spec)),
            ("shadow", lambda d: _shadow(d.spec)),
            ("created", lambda d: d.created_at),
            ("by", lambda d: d.created_by),
        ],
        as_json=as_json,
        empty=f"none yet: `genai deploy apply SPEC.yaml -p {project} --name NAME`",
    )


@deploy_app.command("show")
def show(
    name: str = typer.Argument(..., help="The deployment."),
    project: str = ProjectOpt,
    revision: int | None = typer.Option(None, "--revision", "-r", help="Default: the newest."),
    as_json: bool = JsonOpt,
) -> None:
    """A revision and its whole spec."""
    with client() as c:
        info = c.registry.deployments.get(
            project, name if revision is None else f"{name}@{revision}"
        )
    if as_json:
        print_json(info)
        return
    console.print(
        f"[bold]deployment {info.name}[/bold] revision {info.version} in {project}, "
        f"{when(info.created_at)} by {info.created_by}"
        + (f": {info.description}" if info.description else "")
    )
    for label, value in (("model", info.model), ("adapter", info.adapter)):
        if value:
            console.print(f"  {label}: {value}")
    console.print(_dump(info.spec), markup=False, highlight=False, soft_wrap=True)


@deploy_app.command("traffic")
def traffic(
    name: str = typer.Argument(..., help="The deployment."),
    project: str = ProjectOpt,
    weights: str | None = typer.Option(
        None, help="NAME=WEIGHT pairs, e.g. stable=90,canary=10 (naming the shadow promotes it)."
    ),
    policy: str | None = typer.Option(None, help="weighted, ab or bandit."),
    sticky_header: str | None = typer.Option(None, help="The header that keeps an A/B user."),
    shadow: str | None = typer.Option(
        None, help="A target to shadow (it leaves the live targets), or 'none' to drop it."
    ),
    shadow_sample: float | None = typer.Option(None, help="The share shadowed, in (0, 1]."),
    as_json: bool = JsonOpt,
) -> None:
    """Change the traffic of the newest revision: a new revision."""
    from apps.deployments import change_traffic

    given: dict[str, Any] = {
        "weights": parse_weights(weights) if weights is not None else None,
        "policy": policy,
        "sticky_header": sticky_header,
        "shadow": shadow,
        "shadow_sample": shadow_sample,
    }
    change = _change({k: v for k, v in given.items() if v is not None})
    with client() as c:
        revision = change_traffic(c, project, name, change)
    if as_json:
        print_json(revision)
        return
    console.print(
        f"[green]✓[/] deployment {name} revision {revision.version}: "
        f"{revision.spec.get('policy', 'weighted')}, {_targets(revision.spec)}"
        + (f"; shadow {_shadow(revision.spec)}" if revision.spec.get("shadow") else "")
    )


# ------------------------------------------------------------------ helpers


def load_spec(path: Path) -> dict[str, Any]:
    """A spec file's content: JSON for ``.json``, YAML (a superset of JSON) otherwise."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ValidationError(
            f"cannot read {path}: {error.strerror or error}", field="file"
        ) from None
    data = _json(text, path) if path.suffix.lower() == ".json" else _yaml(text, path)
    if not isinstance(data, dict):
        raise ValidationError(
            f"{path} holds no spec: expected a mapping with 'targets', got {type(data).__name__}",
            field="file",
        )
    return data


def _json(text: str, path: Path) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValidationError(
            f"{path} is not valid JSON: {error.msg} at line {error.lineno}", field="file"
        ) from None


def _yaml(text: str, path: Path) -> Any:
    try:
        import yaml
    except ImportError:
        raise MissingDependencyError(
            "pyyaml", extra="serve", purpose="reading a YAML deployment spec"
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or "unreadable"
        raise ValidationError(f"{path} is not valid YAML: {problem}{where}", field="file") from None


def parse_weights(text: str) -> dict[str, float]:
    """``stable=90,canary=10`` → ``{"stable": 90.0, "canary": 10.0}``."""
    weights = {}
    for pair in (p.strip() for p in text.split(",")):
        target, sep, value = pair.partition("=")
        try:
            if not sep or not target.strip():
                raise ValueError(pair)
            weights[target.strip()] = float(value)
        except ValueError:
            raise ValidationError(
                f"--weights {text!r}: write NAME=WEIGHT pairs separated by commas "
                "(e.g. stable=90,canary=10)",
                field="weights",
            ) from None
    return weights


def _change(given: dict[str, Any]) -> Any:
    """The :class:`TrafficChange` of the options given, its problems as one-line errors."""
    import pydantic

    from apps.deployments import TrafficChange

    try:
        return TrafficChange(**given)
    except pydantic.ValidationError as error:
        first = error.errors()[0]
        field = str(first["loc"][0]).replace("_", "-") if first["loc"] else "traffic"
        raise ValidationError(f"--{field}: {first['msg']}", field=field) from None


def _targets(spec: dict[str, Any]) -> str:
    targets = spec.get("targets") or []
    if len(targets) == 1:
        return str(targets[0].get("name"))
    return ", ".join(f"{t.get('name')}={t.get('weight', 1.0):g}" for t in targets)


def _shadow(spec: dict[str, Any]) -> str:
    shadow = spec.get("shadow")
    if not shadow:
        return ""
    return f"{shadow['target']['name']} ({shadow.get('sample', 1.0):.0%})"


def _dump(spec: dict[str, Any]) -> str:
    try:
        import yaml
    except ImportError:
        return json.dumps(spec, indent=2)
    return str(yaml.safe_dump(spec, sort_keys=False, default_flow_style=None)).rstrip()
