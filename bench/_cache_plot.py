"""Precision vs hit rate over thresholds, ours and GPTCache, one panel per data set.

    bench/.venvs/gptcache/bin/python bench/_cache_plot.py bench/results/cache_quality.json OUT.png

Runs in the bench venv (matplotlib lives there, not in the project's venv).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

STYLE = {
    "GPTCache": {"color": "tab:orange", "marker": "."},
    "ours": {"color": "tab:blue", "marker": "."},
    "ours, no verifier": {"color": "tab:green", "marker": "."},
    "ours, threshold only": {"color": "black", "marker": "", "linestyle": ":"},
}
POINTS = {  # quality rows drawn as labelled markers
    "GPTCache (default)": ("tab:orange", "s"),
    "GPTCache (best F1)": ("tab:orange", "^"),
    "ours (default)": ("tab:blue", "*"),
}


def main(src: str, dst: str) -> None:
    report = json.loads(Path(src).read_text())
    names = list(report["quality"])
    fig, axes = plt.subplots(1, len(names), figsize=(5.2 * len(names), 4.6), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        q = report["quality"][name]
        # GPTCache first, so that ours drawn as a bare threshold (which should coincide
        # with it) stays visible on top
        for system, sweep in sorted(q["sweeps"].items(), key=lambda kv: kv[0] != "GPTCache"):
            pts = [(r["hit_rate"], r["precision"]) for r in sweep if r["precision"] is not None]
            if not pts:
                continue
            style = STYLE.get(system, {"color": "tab:gray", "marker": "."})
            ax.plot(*zip(*pts, strict=True), label=f"{system} (sweep)", markersize=3, **style)
        for label, (color, marker) in POINTS.items():
            r = q["rows"].get(label)
            if r and r["precision"] is not None:
                ax.scatter(
                    r["hit_rate"],
                    r["precision"],
                    color=color,
                    marker=marker,
                    s=90,
                    zorder=5,
                    edgecolors="black",
                    label=f"{label}, t={r['threshold']:g}",
                )
        ax.axhline(0.97, color="gray", linestyle="--", linewidth=0.8)
        ax.set_title(name)
        ax.set_xlabel("hit rate (correct hits / paraphrase queries)")
        ax.set_ylabel("precision (correct / hits)")
        ax.set_xlim(0, 1.01)
        ax.set_ylim(max(0.0, min(0.5, ax.get_ylim()[0])), 1.005)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    fig.suptitle("Semantic cache: precision vs hit rate over thresholds (all-MiniLM-L6-v2)")
    fig.tight_layout()
    fig.savefig(dst, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
