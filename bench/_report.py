"""The gateway benchmark's report: machine, versions, the markdown table, the goal ratios."""

from __future__ import annotations

from typing import Any

from _provenance import machine as base_machine
from _provenance import ours_version as source_version

DIRECT, LITELLM, GENAI = "direct to the stub (baseline)", "LiteLLM proxy", "genai gateway"


def machine() -> str:
    return base_machine() + "; the load generator, the stub and the gateway share these CPUs"


def ours_version() -> str:
    return source_version("genai", "apps")


def ms(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.2f} ms" if signed else f"{value:.2f} ms"


def build_report(rows: dict[str, dict], skipped: dict[str, str], args, meta: dict) -> dict:
    base = rows[DIRECT]["fixed"]["latency_ms"]
    for row in rows.values():
        lat = row["fixed"]["latency_ms"]
        row["added_ms"] = {q: lat[q] - base[q] for q in ("p50", "p95", "p99")}
    goals: dict[str, Any] = {}
    lite, ours = rows.get(LITELLM), rows.get(GENAI)
    if lite and ours:
        lp99, op99 = lite["added_ms"]["p99"], ours["added_ms"]["p99"]
        goals["litellm_added_p99_over_ours"] = lp99 / op99 if op99 > 0 else None
        goals["added_p99_goal_met"] = op99 * 5 <= lp99
        if "ramp" in lite and "ramp" in ours:
            lr, orr = lite["ramp"]["max_sustained_rps"], ours["ramp"]["max_sustained_rps"]
            goals["our_max_rate_over_litellm"] = orr / lr if lr else None
            goals["max_rate_goal_met"] = orr >= 3 * lr
    return meta | {"results": rows, "not_run": skipped, "goals": goals}


def markdown(report: dict) -> str:
    rows, goals = report["results"], report["goals"]
    wrk = any("wrk" in r for r in rows.values())
    head = "| setup | p50 | p95 | p99 | added p50 | added p99 | max sustained req/s |"
    head += " errors at fixed rate | gateway CPU/request |" + (
        " wrk closed-loop req/s |" if wrk else ""
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for name, r in rows.items():
        f, lat = r["fixed"], r["fixed"]["latency_ms"]
        ramp = r.get("ramp")
        top = (
            "-"
            if not ramp
            else f"{ramp['max_sustained_rps']:.0f}" + (" (cap)" if ramp["capped"] else "")
        )
        cpu = f.get("gateway_cpu_ms_per_request")
        cells = [
            name,
            ms(lat["p50"]),
            ms(lat["p95"]),
            ms(lat["p99"]),
            "-" if name == DIRECT else ms(r["added_ms"]["p50"], True),
            "-" if name == DIRECT else ms(r["added_ms"]["p99"], True),
            top,
            f"{f['errors']}/{f['requests']}",
            "-" if cpu is None else f"{cpu:.2f} ms",
        ]
        if wrk:
            w = r.get("wrk")
            cells.append(
                "-" if not w or w["rps"] is None else f"{w['rps']:.0f} ({w['errors']} errors)"
            )
        lines.append("| " + " | ".join(cells) + " |")
    for name, why in report["not_run"].items():
        lines.append(f"| {name} | not run: {why.splitlines()[0][:150]} |")
    lines.append("")
    if "litellm_added_p99_over_ours" in goals or "added_p99_goal_met" in goals:
        ratio = goals.get("litellm_added_p99_over_ours")
        lines.append(
            "Goal 1, added p99 at most 1/5 of LiteLLM's: LiteLLM added p99 / ours = "
            + (f"{ratio:.1f}x" if ratio else "ours <= 0 (within noise)")
            + f" ({'met' if goals['added_p99_goal_met'] else 'NOT met'})."
        )
    if "our_max_rate_over_litellm" in goals:
        ratio = goals["our_max_rate_over_litellm"]
        lines.append(
            "Goal 2, sustained rate at least 3x LiteLLM's: ours / LiteLLM = "
            + (f"{ratio:.1f}x" if ratio else "-")
            + f" ({'met' if goals['max_rate_goal_met'] else 'NOT met'})."
        )
    lines += ["", *report["notes"], "", f"Command: `{report['command']}`"]
    return "\n".join(lines) + "\n"
