"""``genai cache``: turn the semantic cache on or off for a project or one of its
deployments, calibrate its threshold, read a project's counters, and empty its cache.

genai cache enable support --deployment chat          owners; off unless turned on
genai cache disable support                            the whole project (or --deployment)
genai cache calibrate pairs.jsonl --precision 0.98     the threshold for that precision
genai cache calibrate pairs.jsonl --verifier           precision with the verifier and bound
genai cache stats support                              hit rate, savings, error estimates
genai cache invalidate support --deployment chat       maintainers and owners; audited
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from apps.cli._app import JsonOpt, app, client, settings
from apps.cli._output import console, print_json
from genai.errors import ValidationError

if TYPE_CHECKING:
    from cache import DeploymentEstimate

__all__ = ["cache_app"]

cache_app = typer.Typer(
    help="The semantic cache: turn it on, calibrate its threshold, read and empty it.",
    no_args_is_help=True,
)
app.add_typer(cache_app, name="cache")

ProjectArg = typer.Argument(..., help="The AI Project.")


@cache_app.command("enable")
def enable(
    project: str = ProjectArg,
    deployment: str | None = typer.Option(
        None, "--deployment", "-d", help="Only this deployment (default: all of the project's)."
    ),
    threshold: float | None = typer.Option(None, help="Cosine similarity a hit needs."),
    ttl_s: float | None = typer.Option(None, "--ttl-s", help="Seconds an entry lives."),
    max_temperature: float | None = typer.Option(
        None, help="Requests asking for a higher temperature are not cached (default 0)."
    ),
    max_error: float | None = typer.Option(
        None,
        "--max-error",
        help="Answer a semantic hit only where its estimated P(wrong) is at most this (e.g. 0.02).",
    ),
    verifier: bool | None = typer.Option(
        None,
        "--verifier/--no-verifier",
        help="The trained pair verifier judges hits (default off; --max-error turns it on).",
    ),
    recheck_rate: float | None = typer.Option(
        None,
        "--recheck-rate",
        help="Share of verified hits asked of the model again after answering (billed; 0).",
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Turn the cache on for a project's deployments (or one); it is off unless turned on."""
    from cache import ProjectCaches

    with client() as c:
        options = ProjectCaches(c).enable(
            project,
            deployment,
            threshold=threshold,
            ttl_s=ttl_s,
            max_temperature=max_temperature,
            verifier=verifier,
            max_error=max_error,
            recheck_rate=recheck_rate,
        )
    _show_switch(project, options, as_json)


@cache_app.command("disable")
def disable(
    project: str = ProjectArg,
    deployment: str | None = typer.Option(
        None, "--deployment", "-d", help="Only this deployment (default: the whole project)."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Turn the cache off for a project (or one deployment); its entries are no longer used."""
    from cache import ProjectCaches

    with client() as c:
        options = ProjectCaches(c).disable(project, deployment)
    _show_switch(project, options, as_json)


def _show_switch(project: str, options: object, as_json: bool) -> None:
    from cache._options import CacheOptions

    assert isinstance(options, CacheOptions)
    everywhere, on, off = options.enabled_for()
    if as_json:
        print_json({"project": project, "all_deployments": everywhere, "on": on, "off": off})
        return
    if everywhere:
        where = "every deployment" + (f" but {', '.join(off)}" if off else "")
    else:
        where = ", ".join(on) or "no deployment"
    console.print(f"[green]✓[/] the semantic cache of {project} is on for {where}")


@cache_app.command("calibrate")
def calibrate_cmd(
    pairs: Path = typer.Argument(
        ..., help='A JSON-lines file of {"query", "cached", "label"} pairs (1: same answer).'
    ),
    precision: float = typer.Option(0.98, help="The precision to reach, in (0, 1]."),
    embedding_model: str | None = typer.Option(
        None, help="Default: GENAI_EMBEDDING_MODEL (bundled all-MiniLM-L6-v2)."
    ),
    no_verifier: bool = typer.Option(
        False, "--no-verifier", help="Calibrate the similarity alone, without the second check."
    ),
    pair_verifier: bool = typer.Option(
        False,
        "--verifier",
        help="Also report precision and hit rate with the trained pair verifier and the "
        "error bound (--max-error) at the threshold chosen (or --threshold).",
    ),
    threshold: float | None = typer.Option(
        None, help="With --verifier: the cosine threshold (default: the one chosen here)."
    ),
    max_error: list[float] = typer.Option(
        [0.05, 0.02, 0.01], "--max-error", help="With --verifier: bounds to report (repeat)."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """The lowest threshold whose precision on labelled pairs reaches --precision; with
    --verifier, what the pair verifier and the error bound make of the same pairs."""
    from cache import LexicalVerifier, calibrate, load_pairs
    from genai.models import SentenceTransformerEmbedder

    labelled = load_pairs(pairs)
    model = embedding_model or settings().embedding_model
    embedder = SentenceTransformerEmbedder(model)
    lexical = None if no_verifier else LexicalVerifier()
    result = calibrate(labelled, precision, embedder=embedder, verifier=lexical)
    report = None
    if pair_verifier:
        from cache import ErrorCurve, PairVerifier, calibrate_verifier

        scorer = PairVerifier()
        report = calibrate_verifier(
            labelled,
            scorer=scorer,
            curve=ErrorCurve.from_dict(scorer.artefact.calibration),
            threshold=threshold or result.threshold or 0.8,
            embedder=embedder,
            verifier=lexical,
            max_errors=max_error,
        )
    if as_json:
        print_json(asdict(result) | ({"verifier": asdict(report)} if report else {}))
    else:
        _show_calibration(result)
        if report is not None:
            _show_verifier(report)
    if result.threshold is None and report is None:
        raise typer.Exit(1)


def _show_verifier(report: object) -> None:
    from rich.table import Table

    from cache import VerifierCalibration

    assert isinstance(report, VerifierCalibration)
    table = Table(
        title=f"with the pair verifier, at threshold {report.threshold:.2f} "
        f"({report.reached_verifier} of {report.pairs} pairs reach it)",
        title_justify="left",
    )
    for column in ("checks", "max_error", "hits", "false hits", "precision", "hit rate", "recall"):
        table.add_column(column, justify="right")
    for row in report.rows:
        table.add_row(
            row.name,
            "-" if row.max_error is None else f"{row.max_error:g}",
            str(row.hits),
            str(row.false_hits),
            f"{row.precision:.3f}",
            f"{row.hit_rate:.3f}",
            f"{row.recall:.3f}",
        )
    console.print(table)


def _show_calibration(result: object) -> None:
    from rich.table import Table

    from cache import Calibration

    assert isinstance(result, Calibration)
    table = Table(title="precision and recall by threshold", title_justify="left")
    for column in ("threshold", "hits", "false hits", "precision", "recall"):
        table.add_column(column, justify="right")
    for row in result.table:
        mark = "[green]" if row.threshold == result.threshold else ""
        table.add_row(
            f"{mark}{row.threshold:.2f}",
            str(row.hits),
            str(row.false_hits),
            f"{row.precision:.3f}",
            f"{row.recall:.3f}",
        )
    console.print(table)
    console.print(
        f"{result.pairs} pairs ({result.positives} labelled same), "
        f"{result.rejected_by_verifier} rejected by the second check"
    )
    chosen = result.chosen
    if result.threshold is None or chosen is None:
        console.print(
            f"[red]✗[/] no threshold reaches precision {result.target}: lower --precision, "
            "or give pairs closer to your traffic"
        )
        return
    console.print(
        f"[green]✓[/] threshold {result.threshold:.2f}: precision {chosen.precision:.3f}, "
        f"recall {chosen.recall:.3f} (set it: `genai cache enable PROJECT "
        f"--threshold {result.threshold:.2f}`)"
    )


def _cache() -> object:
    """The cache over the platform's database. The vectors of an embedded Chroma belong to
    the gateway process; without GENAI_CHROMA_URL they are left to it (rows are the truth:
    a vector without its row is never served, and the gateway removes it when met)."""
    from cache import SemanticCache
    from genai.models import create_embedder
    from genai.store import Store
    from genai.vectors import InMemoryVectorStore, create_vector_store

    cfg = settings()
    vectors = create_vector_store(cfg) if cfg.chroma_url else InMemoryVectorStore()
    return SemanticCache(vectors, create_embedder(cfg), store=Store(cfg.resolved_database_url))


@cache_app.command("stats")
def stats(project: str = ProjectArg, as_json: bool = JsonOpt) -> None:
    """Lookups, hit rate, tokens and cost saved, false hits and entries of a project."""
    from cache import ProjectCaches, SemanticCache

    cache = _cache()
    assert isinstance(cache, SemanticCache)
    with client() as c:
        caches = ProjectCaches(c, cache)
        found = caches.stats(project)
        estimates = caches.estimates(project)
    cache.close()
    # what feedback reported wrong, of the hits served
    observed = found.false_hits / found.hits if found.hits else 0.0
    if as_json:
        print_json(
            {
                **asdict(found),
                "hits": found.hits,
                "hit_rate": found.hit_rate,
                "observed_error": observed,
                "error_bound": [_estimate_json(e) for e in estimates],
            }
        )
        return
    console.print(
        f"[bold]cache of {project}[/bold]: {found.entries} entries, {found.lookups} lookups, "
        f"hit rate {found.hit_rate:.1%} ({found.exact_hits} exact, "
        f"{found.semantic_hits} semantic)"
    )
    console.print(
        f"  saved {found.tokens_saved} tokens and ${found.cost_saved_usd:.4f}; "
        f"{found.false_hits} answers reported wrong ({observed:.1%} of hits); "
        f"{found.evictions} evictions"
    )
    for deployment, row in found.by_deployment.items():
        if deployment:
            console.print(
                f"  {deployment}: {int(row['lookups'])} lookups, "
                f"{int(row['exact_hits'] + row['semantic_hits'])} hits"
            )
    if estimates:
        _show_estimates(estimates)


def _estimate_json(estimate: DeploymentEstimate) -> dict[str, object]:
    stats = estimate.stats
    return {
        "deployment": estimate.deployment,
        "max_error": estimate.max_error,
        "min_score": estimate.min_score,
        "estimated_error": estimate.estimated_error,
        "mean_estimated_error": stats.estimated_error,
        "judged_hits": stats.hits,
        "reported_wrong": stats.reported_wrong,
        "rechecked": stats.rechecked,
        "recheck_wrong": stats.recheck_wrong,
        "observed_error": stats.observed_error,
        "observed_interval": list(stats.observed_interval),
    }


def _show_estimates(estimates: Sequence[DeploymentEstimate]) -> None:
    from rich.table import Table

    table = Table(title="error bound of verified semantic hits", title_justify="left")
    columns = (
        "deployment",
        "max_error",
        "min score",
        "est. error",
        "judged hits",
        "labelled wrong",
        "observed (95% CI)",
        "rechecked",
    )
    for column in columns:
        table.add_column(column, justify="right")

    def f(x: float | None, digits: int = 3) -> str:
        return "-" if x is None else f"{x:.{digits}f}"

    for estimate in estimates:
        stats = estimate.stats
        low, high = stats.observed_interval
        table.add_row(
            estimate.deployment,
            "-" if estimate.max_error is None else f"{estimate.max_error:g}",
            f(estimate.min_score),
            f(estimate.estimated_error, 4),
            str(stats.hits),
            f"{stats.reported_wrong} + {stats.recheck_wrong}",
            f"{stats.observed_error:.3f} [{low:.3f}, {high:.3f}]",
            f"{stats.rechecked} ({stats.recheck_wrong} wrong)",
        )
    console.print(table)
    console.print(
        "  est. error: the bound's P(wrong) at the lowest verifier score answered under "
        "max_error; labelled wrong: by feedback + by re-checks; observed: labelled / judged"
    )


@cache_app.command("invalidate")
def invalidate(
    project: str = ProjectArg,
    deployment: str | None = typer.Option(None, "--deployment", "-d", help="Only this one."),
    adapter: str | None = typer.Option(None, help="Only this adapter (with --deployment)."),
    prompt_version: str | None = typer.Option(None, help="Only this prompt version."),
    kb_version: str | None = typer.Option(None, help="Only this knowledge-base version."),
    as_json: bool = JsonOpt,
) -> None:
    """Delete a project's cached answers (all, or one deployment's)."""
    from cache import ProjectCaches, SemanticCache

    if deployment is None and (adapter or prompt_version or kb_version):
        raise ValidationError("--adapter, --prompt-version and --kb-version need --deployment")
    cache = _cache()
    assert isinstance(cache, SemanticCache)
    with client() as c:
        count = ProjectCaches(c, cache).invalidate(
            project,
            deployment,
            adapter=adapter,
            prompt_version=prompt_version,
            kb_version=kb_version,
        )
    cache.close()
    if as_json:
        print_json({"project": project, "deployment": deployment, "deleted": count})
        return
    where = f"deployment {deployment} of {project}" if deployment else project
    console.print(f"[green]✓[/] deleted {count} cached answers of {where}")
