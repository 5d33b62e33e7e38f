"""The fine-tuning benchmark's report: goals, the markdown tables, notes and the bar chart."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

OURS, TRL, HAND = "ours", "SFTTrainer", "hand loop"
NAMES = {"ours": OURS, "trl": TRL, "hand": HAND}
#: the TRL mode with the same batches as each of ours
SAME_BATCHING = {
    "padding": "trl/padding",
    "packing": "trl/padding_free",
    "padding_free": "trl/padding_free",
}
HAND_SAME = {"padding": "hand/padding", "packing": "hand/packing", "padding_free": "hand/packing"}
G1 = "ours >= 1.0x SFTTrainer, matched settings"
G2 = "ours >= 1.3x SFTTrainer on the skewed set (ours packed vs TRL's default, padded)"
G3 = "ours <= 5% slower than the hand loop"
#: (goal, what, dataset, ours, reference, threshold)
GOALS = [
    ("G1", G1, "uniform", "ours/padding", "trl/padding", 1.0),
    ("G1", G1, "skewed", "ours/padding", "trl/padding", 1.0),
    ("G1", G1, "skewed", "ours/packing", "trl/padding_free", 1.0),
    ("G2", G2, "skewed", "ours/packing", "trl/padding", 1.3),
    ("G3", G3, "uniform", "ours/padding", "hand/padding", 0.95),
    ("G3", G3, "skewed", "ours/padding", "hand/padding", 0.95),
    ("G3", G3, "skewed", "ours/packing", "hand/packing", 0.95),
]


def label(key: str) -> str:
    trainer, mode = key.split("/")
    mode = {"padding_free": "padding-free"}.get(mode, mode)
    default = " (TRL default)" if key == "trl/padding" else ""
    return f"{NAMES[trainer]}, {mode}{default}"


def paired(a: dict[str, Any], b: dict[str, Any], key: str = "tokens_per_s") -> float:
    """The median of each round's ratio (the rounds run every configuration once, the
    compared ones one after the other)."""
    pairs = zip(a["runs"], b["runs"], strict=False)
    return statistics.median(x[key] / y[key] for x, y in pairs)


def goals(report: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for model, by_kind in report["results"].items():
        for goal, what, kind, ours, ref, threshold in GOALS:
            rows = by_kind.get(kind, {})
            if ours not in rows or ref not in rows:
                continue
            ratio = rows[ours]["tokens_per_s"] / rows[ref]["tokens_per_s"]
            out.append(
                {
                    "goal": goal,
                    "what": what,
                    "model": model,
                    "dataset": kind,
                    "ours": ours,
                    "reference": ref,
                    "ratio": ratio,
                    "ratio_paired": paired(rows[ours], rows[ref]),
                    "ratio_cpu": rows[ours]["tokens_per_cpu_s"] / rows[ref]["tokens_per_cpu_s"],
                    "threshold": threshold,
                    "met": ratio >= threshold,
                }
            )
    return out


def x(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}x"


def ratio_to(rows: dict[str, Any], key: str, ref: str | None) -> float | None:
    if ref is None or ref not in rows or key == ref:
        return None
    return float(rows[key]["tokens_per_s"] / rows[ref]["tokens_per_s"])


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "| model | dataset | trainer, batching | tokens/s | trained tokens/s | s/step "
        "| spread | tokens/CPU-s | vs SFTTrainer, same batching | vs SFTTrainer default "
        "| vs hand loop, same batching | run wall (set-up) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for model, by_kind in report["results"].items():
        for kind, rows in by_kind.items():
            for key, r in rows.items():
                mode = key.split("/")[1]
                same_trl = SAME_BATCHING.get(mode)
                cells = [
                    model,
                    kind,
                    label(key),
                    f"{r['tokens_per_s']:.1f}",
                    f"{r['trained_tokens_per_s']:.1f}",
                    f"{r['s_per_step']:.3f}",
                    f"±{r['spread'] / 2:.0%}",
                    f"{r['tokens_per_cpu_s']:.1f}",
                    x(ratio_to(rows, key, same_trl)),
                    x(ratio_to(rows, key, "trl/padding")),
                    x(ratio_to(rows, key, HAND_SAME.get(mode))),
                    f"{r['run_wall_s']:.1f} s ({r['setup_s']:.1f} s)",
                ]
                lines.append("| " + " | ".join(cells) + " |")
    for what, why in report["not_run"].items():
        lines.append(f"| {what} | not run: {why.splitlines()[0][:160]} | | | | | | | | | | |")
    lines += [
        "",
        "| goal | model | dataset | comparison | ratio | paired | per CPU-s | met |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for g in report["goals"]:
        lines.append(
            f"| {g['goal']}: {g['what']} | {g['model']} | {g['dataset']} | "
            f"{label(g['ours'])} / {label(g['reference'])} | {x(g['ratio'], 3)} | "
            f"{x(g['ratio_paired'], 3)} | {x(g['ratio_cpu'], 3)} | {'yes' if g['met'] else 'NO'} |"
        )
    lines += ["", *report["notes"], "", f"Command: `{report['command']}`"]
    return "\n".join(lines) + "\n"


def loss_agreement(rows: dict[str, Any]) -> float | None:
    """The largest difference of a step's loss between any configuration and the hand
    loop's padded run on the same dataset (the same rows, init and loss: ~0)."""
    ref = rows.get("hand/padding")
    if ref is None:
        return None
    worst = 0.0
    for r in rows.values():
        for step, loss in r["losses"].items():
            other = ref["losses"].get(step)
            if other is not None:
                worst = max(worst, abs(float(loss) - float(other)))
    return worst


def tokens_check(report: dict[str, Any]) -> list[str]:
    """The Trainers' own token counts (ours: ``num_input_tokens_seen``, non-padding; TRL:
    its ``num_tokens`` metric) against the batches the benchmark planned."""
    bad = []
    for model, by_kind in report["results"].items():
        for kind, rows in by_kind.items():
            plan = report["data"][model][kind]["plan"]
            want, total = [], 0
            for p in plan:
                total += p["tokens"]
                want.append(total)
            for key, r in rows.items():
                seen = r.get("tokens_seen")
                if seen and seen != want:
                    bad.append(f"{model}/{kind}/{key}: {seen} != planned {want}")
    return bad


def notes(report: dict[str, Any]) -> list[str]:
    out = []
    for model, s in report["settings"].items():
        stats = report["data"][model]
        shapes = "; ".join(
            f"{kind}: {d['stats']['rows']} rows, {d['stats']['tokens_min']}-"
            f"{d['stats']['tokens_max']} tokens (mean {d['stats']['tokens_mean']}, p50 "
            f"{d['stats']['tokens_p50']}, p90 {d['stats']['tokens_p90']}), padded batches "
            f"{_fill(d['plan']):.0%} real tokens"
            for kind, d in stats.items()
        )
        agree = {k: loss_agreement(v) for k, v in report["results"][model].items()}
        out.append(
            f"{model}: batch {s['batch_size']} x accumulation {s['gradient_accumulation']}, "
            f"max_length {s['max_length']}, {s['steps']} optimizer steps per run of which the "
            f"first {s['warmup_steps_untimed']} untimed, median of {s['repeats']} rounds; "
            f"{shapes}. Largest per-step loss difference from the hand loop: "
            + ", ".join(f"{k} {v:.1e}" for k, v in agree.items() if v is not None)
            + "."
        )
    bad = tokens_check(report)
    out.append(
        "Same batches: the Trainers' own per-step token counts equal the planned batches "
        + ("for every run of ours and TRL." if not bad else "EXCEPT: " + "; ".join(bad))
    )
    s = next(iter(report["settings"].values()), {})
    out.append(
        f"Matched: LoRA r={s.get('rank')} alpha={s.get('alpha')} dropout {s.get('dropout')} on "
        f"{s.get('target_modules')}, fp32, sdpa attention, no KV cache, no gradient checkpointing, "
        f"adamw_torch lr {s.get('learning_rate')} {s.get('lr_scheduler')} schedule, warmup "
        f"{s.get('warmup_steps')}, weight decay {s.get('weight_decay')}, max_grad_norm "
        f"{s.get('max_grad_norm')}, seed and data_seed {s.get('seed')} (same initial adapter, "
        "same row order), assistant-only loss normalised by the trained tokens of the "
        "accumulation window, a log every step, no checkpoint or progress bar while timed. "
        "TRL gets the rows pre-tokenized with `assistant_masks`, which its preparation turns "
        "into the same labels (its own assistant_only_loss needs `{% generation %}` markers: "
        + "; ".join(
            f"{m}'s template: " + _verdict(c)
            for m, c in report.get("trl_template_check", {}).items()
        )
        + "); its padding-free mode needs max_length=None (no row is longer than max_length). "
        "Not matched, because they are each trainer's own work per step: TRL computes the "
        "loss with its fused, chunked LM head (plus entropy and top-1 accuracy metrics); ours "
        "counts input tokens (include_num_input_tokens_seen) and runs its metrics recorder."
    )
    for model, c in report.get("fixed_costs", {}).items():
        step = report["results"][model].get("uniform", {}).get("ours/padding", {})
        per_micro = c["train_ms"] + c["num_parameters_ms"]
        per_step = c["zero_grad_ms"] + c["parameters_walk_ms"]
        ga = report["settings"][model]["gradient_accumulation"]
        total = per_micro * ga + per_step
        share = total / 1e3 / step["s_per_step"] if step else 0.0
        out.append(
            f"Trainer's fixed cost per optimizer step, {model} ({c['modules']} modules with "
            f"the adapter), timed alone: model.train() {c['train_ms']:.1f} ms and "
            f"floating_point_ops (num_parameters) {c['num_parameters_ms']:.1f} ms per "
            f"micro-batch, model.zero_grad() {c['zero_grad_ms']:.1f} ms and clip_grad_norm_'s "
            f"walk over all parameters {c['parameters_walk_ms']:.1f} ms per step: about "
            f"{total:.0f} ms, {share:.1%} of a uniform step here."
        )
    spam = {k: v for k, v in report.get("trainer_warnings", {}).items() if v > 10}
    for line, count in spam.items():
        out.append(f"Our worker's log holds {count} times: `{line[:110]}`.")
    loads = [
        run["other_load_cpus"]
        for by_kind in report["results"].values()
        for rows in by_kind.values()
        for r in rows.values()
        for run in r["runs"]
    ]
    v = report["versions"]
    trl = v.get("trl_venv", {})
    out.append(
        f"Machine: {report['machine']}; {report['threads']} torch thread(s) per worker; other "
        f"processes used {min(loads, default=0):.1f}-{max(loads, default=0):.1f} CPUs "
        f"(median {statistics.median(loads) if loads else 0:.1f}) during the timed runs."
    )
    out.append(
        f"Versions: {v['ours']}; torch {v.get('torch')}, transformers {v.get('transformers')}, "
        f"peft {v.get('peft')}, accelerate {v.get('accelerate')}"
        + (
            f"; TRL venv: trl {trl.get('trl')}, datasets {trl.get('datasets')}, transformers "
            f"{trl.get('transformers')}, peft {trl.get('peft')}, torch {trl.get('torch')}"
            if trl
            else ""
        )
        + f". Rows from README.md (sha256 {report['readme_sha256']})."
    )
    return out


def _verdict(check: dict[str, Any]) -> str:
    said = str(check["assistant_only_loss"])
    if said.startswith("refused"):
        markers = "has" if check["generation_markers"] else "has no"
        return f"{markers} markers, and TRL refuses to patch it"
    return said


def _fill(plan: list[dict[str, int]]) -> float:
    return sum(p["tokens"] for p in plan) / max(1, sum(p["padded"] for p in plan))


def plot(report: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    models = list(report["results"])
    fig, axes = plt.subplots(1, len(models), figsize=(6.5 * len(models), 4.6), squeeze=False)
    colors = {"ours": "#2b6cb0", "trl": "#dd6b20", "hand": "#718096"}
    for ax, model in zip(axes[0], models, strict=True):
        xs, heights, tints, hatches, names = [], [], [], [], []
        pos = 0.0
        ticks = []
        for kind, rows in report["results"][model].items():
            start = pos
            for key, r in rows.items():
                trainer, mode = key.split("/")
                xs.append(pos)
                heights.append(r["tokens_per_s"])
                tints.append(colors[trainer])
                hatches.append("//" if mode in ("packing", "padding_free") else "")
                names.append(label(key))
                pos += 1
            ticks.append(((start + pos - 1) / 2, kind))
            pos += 0.8
        bars = ax.bar(xs, heights, color=tints, hatch=hatches, edgecolor="white")
        for bar, value in zip(bars, heights, strict=True):
            ax.annotate(
                f"{value:.0f}",
                (bar.get_x() + bar.get_width() / 2, value),
                ha="center",
                va="bottom",
                fontsize=8,
            )
        ax.set_xticks([t for t, _ in ticks], [k for _, k in ticks])
        ax.set_ylabel("training tokens/s (non-padding input tokens)")
        ax.set_title(f"{model}: LoRA r=8 all-linear, fp32, CPU")
        handles = [
            plt.Rectangle((0, 0), 1, 1, color=c, label=NAMES[t]) for t, c in colors.items()
        ] + [plt.Rectangle((0, 0), 1, 1, fill=False, hatch="//", label="packed / padding-free")]
        ax.set_ylim(0, max(heights, default=1) * 1.3)
        ax.legend(handles=handles, fontsize=8, loc="upper center", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
