"""Evaluation: suites, repeated runs with confidence intervals, paired comparisons, gates,
reports, eval-gated promotion and staged canaries.

It imports ``genai`` only: deployments are asked through the gateway with a project key
(quotas, DLP and the ledger apply), runs and suites are kept in the registry.

    import eval
    job = eval.run(client, "demo", "suite.yaml", target="docs-bot",
                   gateway="http://127.0.0.1:4000/v1", api_key=key)
    print(job.summary.metrics["token_f1"].estimate)
    eval.promote(client, "demo", job.eval.id, prompt="qa@3", label="production")
    eval.canary(client, "demo", "docs-bot", canary="v2", stable="v1")
"""

from eval._aggregate import MetricInfo, compare_runs, summarize
from eval._canary import SIGNALS, CanaryResult, CanaryStep, FeedbackSignal, Signal, canary
from eval._gate import EXIT_CODES, Check, GateResult, gate, junit_xml, write_junit
from eval._lm_eval import LmEvalJob, lm_eval
from eval._lm_eval_output import LmEvalScore
from eval._load import compare_with, find_baseline, gate_run, load_run, suite_of
from eval._metric import METRICS, Judge, Metric, MetricEnv
from eval._promote import Promotion, PromotionRefused, promote
from eval._report import render_html, write_html
from eval._run import EvalJob, build_metrics, resume, run
from eval._shadow import ShadowJob, shadow
from eval._stats import Comparison, Estimate, compare, estimate
from eval._stats_unpaired import compare_independent
from eval._suite import MetricSpec, Suite, Threshold, load_suite, rows_of
from eval._summary import MetricSummary, RowResult, RunSummary
from eval._target import GatewayTarget, split_target
from eval._types import Answer, Citation, EvalRow, Message, MetricKind, MetricValue, Sample

__all__ = [
    "EXIT_CODES",
    "METRICS",
    "SIGNALS",
    "Answer",
    "CanaryResult",
    "CanaryStep",
    "Check",
    "Citation",
    "Comparison",
    "Estimate",
    "EvalJob",
    "EvalRow",
    "FeedbackSignal",
    "GateResult",
    "GatewayTarget",
    "Judge",
    "LmEvalJob",
    "LmEvalScore",
    "Message",
    "Metric",
    "MetricEnv",
    "MetricInfo",
    "MetricKind",
    "MetricSpec",
    "MetricSummary",
    "MetricValue",
    "Promotion",
    "PromotionRefused",
    "RowResult",
    "RunSummary",
    "Sample",
    "ShadowJob",
    "Signal",
    "Suite",
    "Threshold",
    "build_metrics",
    "canary",
    "compare",
    "compare_independent",
    "compare_runs",
    "compare_with",
    "estimate",
    "find_baseline",
    "gate",
    "gate_run",
    "junit_xml",
    "lm_eval",
    "load_run",
    "load_suite",
    "promote",
    "render_html",
    "resume",
    "rows_of",
    "run",
    "shadow",
    "split_target",
    "suite_of",
    "summarize",
    "write_html",
    "write_junit",
]
