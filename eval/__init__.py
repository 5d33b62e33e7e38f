"""Evaluation: suites, repeated runs with confidence intervals, paired comparisons, gates,
reports and eval-gated promotion.

It imports ``genai`` only: deployments are asked through the gateway with a project key
(quotas, DLP and the ledger apply), runs and suites are kept in the registry.

    import eval
    job = eval.run(client, "demo", "suite.yaml", target="docs-bot",
                   gateway="http://127.0.0.1:4000/v1", api_key=key)
    print(job.summary.metrics["token_f1"].estimate)
"""

from eval._aggregate import MetricInfo, compare_runs, summarize
from eval._gate import EXIT_CODES, Check, GateResult, gate, junit_xml, write_junit
from eval._load import find_baseline, load_run, suite_of
from eval._metric import METRICS, Judge, Metric, MetricEnv
from eval._report import render_html, write_html
from eval._run import EvalJob, build_metrics, resume, run
from eval._stats import Comparison, Estimate, compare, estimate
from eval._suite import MetricSpec, Suite, Threshold, load_suite, rows_of
from eval._summary import MetricSummary, RowResult, RunSummary
from eval._target import GatewayTarget, split_target
from eval._types import Answer, Citation, EvalRow, Message, MetricKind, MetricValue, Sample

__all__ = [
    "EXIT_CODES",
    "METRICS",
    "Answer",
    "Check",
    "Citation",
    "Comparison",
    "Estimate",
    "EvalJob",
    "EvalRow",
    "GateResult",
    "GatewayTarget",
    "Judge",
    "Message",
    "Metric",
    "MetricEnv",
    "MetricInfo",
    "MetricKind",
    "MetricSpec",
    "MetricSummary",
    "MetricValue",
    "RowResult",
    "RunSummary",
    "Sample",
    "Suite",
    "Threshold",
    "build_metrics",
    "compare",
    "compare_runs",
    "estimate",
    "find_baseline",
    "gate",
    "junit_xml",
    "load_run",
    "load_suite",
    "render_html",
    "resume",
    "rows_of",
    "run",
    "split_target",
    "suite_of",
    "summarize",
    "write_html",
    "write_junit",
]
