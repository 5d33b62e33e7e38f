"""Loss curves as a matplotlib figure (a notebook shows it; `genai registry runs show`
draws them as text)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from functools import cache
from typing import Any

from genai.errors import MissingDependencyError
from genai.registry import MetricPoint

__all__ = ["plot_metrics"]


def _series(points: Sequence[MetricPoint], key: str) -> list[tuple[int, float]]:
    return sorted((p.step, p.value) for p in points if p.key == key)


@cache
def _figure_class() -> Any:
    """matplotlib's Figure that a notebook shows as a picture by itself: without pyplot (no
    global state, no GUI backend) no inline backend registers a formatter for it, and
    Jupyter would print ``<Figure size 600x350 with 1 Axes>``."""
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise MissingDependencyError("matplotlib", extra="finetune", purpose="plots") from error

    class NotebookFigure(Figure):
        def _repr_png_(self) -> bytes:
            out = io.BytesIO()
            self.savefig(out, format="png", bbox_inches="tight")
            return out.getvalue()

    return NotebookFigure


def plot_metrics(
    points: Sequence[MetricPoint], *, keys: Sequence[str] = ("loss", "eval_loss"), title: str = ""
) -> Any:
    """A figure with one line per metric in ``keys`` against the optimizer step."""
    figure = _figure_class()(figsize=(6, 3.5))
    axes = figure.add_subplot()
    for key in keys:
        series = _series(points, key)
        if series:
            steps, values = zip(*series, strict=True)
            axes.plot(steps, values, label=key, marker="o" if len(series) < 30 else None)
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("loss")
    axes.grid(alpha=0.3)
    if title:
        axes.set_title(title)
    if axes.get_legend_handles_labels()[0]:
        axes.legend()
    return figure
