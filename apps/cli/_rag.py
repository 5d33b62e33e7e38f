"""``genai kb …``, ``genai ingest`` and ``genai ask``: knowledge bases from the command line."""

from __future__ import annotations

import re
from pathlib import Path

import typer
from rich.markup import escape

from apps.cli._app import JsonOpt, ProjectOpt, app, client
from apps.cli._output import console, print_json, show_record, show_table
from genai.errors import ValidationError
from rag import KnowledgeBases, SearchMode, SplitterConfig
from rag._types import FilterValue, Scalar

kb_app = typer.Typer(help="Knowledge bases: create, list, show, delete.", no_args_is_help=True)
app.add_typer(kb_app, name="kb")

KbOpt = typer.Option(..., "--kb", "-k", help="The knowledge base.")
_FILTER = re.compile(r"^([A-Za-z0-9_.-]+)\s*(>=|<=|!=|>|<|=)\s*(.*)$")
_OPS = {"=": "$eq", "!=": "$ne", ">": "$gt", ">=": "$gte", "<": "$lt", "<=": "$lte"}


@kb_app.command("create")
def kb_create(
    name: str,
    project: str = ProjectOpt,
    description: str = typer.Option("", "--description", "-d"),
    chunk_size: int = typer.Option(
        SplitterConfig().chunk_size, help="Tokens per chunk (embedding model's tokenizer)."
    ),
    chunk_overlap: int = typer.Option(SplitterConfig().chunk_overlap, help="Tokens of overlap."),
    embedding_model: str | None = typer.Option(
        None, help="Default: GENAI_EMBEDDING_MODEL (bundled all-MiniLM-L6-v2)."
    ),
    reranker: str | None = typer.Option(None, help="A local cross-encoder directory."),
    redact: bool = typer.Option(False, help="Apply the project's DLP policy before indexing."),
    as_json: bool = JsonOpt,
) -> None:
    """Create a knowledge base in a project (its model and splitter are fixed for life)."""
    config = SplitterConfig(chunk_size=chunk_size, chunk_overlap=chunk_overlap)
    with client() as c:
        kbs = KnowledgeBases(c)
        kb = kbs.create(
            project,
            name,
            description=description,
            splitter=config,
            embedding_model=embedding_model,
            reranker=reranker,
            redact=redact,
        )
        info = kb.info
    if as_json:
        print_json(info)
        return
    console.print(f"[green]✓[/] knowledge base {name} created in {project} ({info.collection})")


@kb_app.command("list")
def kb_list(project: str = ProjectOpt, as_json: bool = JsonOpt) -> None:
    """The project's knowledge bases: version, documents, chunks, model."""
    with client() as c:
        rows = KnowledgeBases(c).list(project)
    show_table(
        f"knowledge bases in {project}",
        rows,
        [
            ("name", lambda r: r.name),
            ("version", lambda r: r.version),
            ("documents", lambda r: r.documents),
            ("chunks", lambda r: r.chunks),
            ("model", lambda r: r.embedding_model),
            ("updated", lambda r: r.updated_at),
        ],
        as_json=as_json,
    )


@kb_app.command("show")
def kb_show(name: str, project: str = ProjectOpt, as_json: bool = JsonOpt) -> None:
    """One knowledge base: its configuration, collection, current version and counts."""
    with client() as c:
        info = KnowledgeBases(c).info(project, name)
    show_record(f"knowledge base {project}/{name}", info, as_json=as_json)


@kb_app.command("delete")
def kb_delete(
    name: str,
    project: str = ProjectOpt,
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete a knowledge base and its vectors (maintainer); its dataset versions stay."""
    if not yes:
        typed = typer.prompt(f"This deletes knowledge base {name} and its index. Type its name")
        if typed != name:
            raise ValidationError(f"{typed!r} is not {name!r}: nothing was deleted")
    with client() as c:
        KnowledgeBases(c).delete(project, name)
    console.print(f"[green]✓[/] knowledge base {name} deleted")


@app.command("ingest")
def ingest(
    paths: list[Path] = typer.Argument(..., help="Files and folders to sync."),
    project: str = ProjectOpt,
    kb: str = KbOpt,
    include: list[str] = typer.Option([], "--include", help="Glob to include (repeatable)."),
    exclude: list[str] = typer.Option([], "--exclude", help="Glob to skip (repeatable)."),
    keep_missing: bool = typer.Option(
        False, "--keep-missing", help="Keep indexed files that no longer exist."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Sync files into a knowledge base: add new, update changed, delete removed, skip same."""
    from rag import DEFAULT_EXCLUDE

    with client() as c:
        handle = KnowledgeBases(c).get(project, kb)
        report = handle.ingest(
            paths,
            include=include,
            exclude=(*DEFAULT_EXCLUDE, *exclude),
            delete_missing=not keep_missing,
            progress=not as_json and console.is_terminal,
        )
    if as_json:
        print_json(report)
        return
    console.print(
        f"[green]✓[/] {project}/{kb}@{report.version}: {len(report.added)} added, "
        f"{len(report.updated)} updated, {len(report.deleted)} deleted, "
        f"{len(report.unchanged)} unchanged; {report.chunks_written} chunks written "
        f"({report.chunks_embedded} embedded) in {report.seconds:.1f}s"
    )
    for source, why in report.failed.items():
        console.print(f"[yellow]![/] {escape(source)}: {escape(why)}")


@app.command("ask")
def ask(
    question: str,
    project: str = ProjectOpt,
    kb: str = KbOpt,
    k: int = typer.Option(4, "--top", "-n", help="Chunks to retrieve."),
    mode: SearchMode = typer.Option(SearchMode.HYBRID, help="hybrid, dense or sparse."),
    filters: list[str] = typer.Option(
        [], "--filter", "-f", help="KEY=VALUE, KEY>=N … on chunk metadata (repeatable)."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Answer a question from a knowledge base, quoting and citing its chunks."""
    with client() as c:
        answer = KnowledgeBases(c).get(project, kb).ask(question, k, _filters(filters), mode)
    if as_json:
        print_json(answer)
        return
    console.print(escape(answer.text))
    if answer.citations:
        console.print()
    for citation in answer.citations:
        chunk = citation.chunk
        console.print(f"[bold][{citation.number}][/bold] {escape(chunk.metadata.citation)}")
        snippet = " ".join(chunk.text.split())
        console.print(f"    [dim]{escape(snippet[:160])}{'…' if len(snippet) > 160 else ''}[/]")


def _filters(items: list[str]) -> dict[str, FilterValue] | None:
    out: dict[str, FilterValue] = {}
    for item in items:
        match = _FILTER.match(item)
        if match is None:
            raise ValidationError(f"--filter {item!r} is not KEY=VALUE (or KEY>=N, KEY!=V …)")
        key, op, raw = match.groups()
        conditions = out.setdefault(key, {})
        assert isinstance(conditions, dict)
        conditions[_OPS[op]] = _scalar(raw)
    return out or None


def _scalar(raw: str) -> Scalar:
    text = raw.strip()
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text.strip("'\"")
