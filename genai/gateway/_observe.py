"""The gateway's Prometheus metrics, JSON access log, and OpenTelemetry spans.

The access log carries the request id and the numbers of each request, never its text,
unless the project enables ``prompt_logging``. Spans are made only when OpenTelemetry is
installed and ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or a test's tracer provider) is configured.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["GatewayMetrics", "access_enabled", "access_log", "span"]

_LATENCY = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_CIRCUIT = {"closed": 0, "half_open": 1, "open": 2}


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter(
            "genai_gateway_requests",
            "Requests by project, model and status.",
            ["project", "model", "endpoint", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "genai_gateway_request_seconds",
            "Time to the response headers.",
            ["endpoint"],
            buckets=_LATENCY,
            registry=r,
        )
        self.overhead = Histogram(
            "genai_gateway_overhead_seconds",
            "The gateway's own time (total minus upstream).",
            buckets=_LATENCY,
            registry=r,
        )
        self.upstream = Histogram(
            "genai_gateway_upstream_seconds",
            "Upstream time by target.",
            ["target"],
            buckets=_LATENCY,
            registry=r,
        )
        self.tokens = Counter(
            "genai_gateway_tokens", "Tokens by project and kind.", ["project", "kind"], registry=r
        )
        self.cache = Counter(
            "genai_gateway_cache_lookups",
            "Cache lookups by result.",
            ["project", "result"],
            registry=r,
        )
        self.upstream_errors = Counter(
            "genai_gateway_upstream_errors",
            "Failed target calls by target and reason.",
            ["target", "reason"],
            registry=r,
        )
        self.circuit = Gauge(
            "genai_gateway_circuit_state",
            "Circuit per upstream: 0 closed, 1 half-open, 2 open.",
            ["upstream"],
            registry=r,
        )
        self.shadow = Counter(
            "genai_gateway_shadow_requests", "Shadow calls by status.", ["status"], registry=r
        )
        self.ledger_pending = Gauge(
            "genai_gateway_ledger_pending", "Usage rows not yet written.", registry=r
        )

    def set_circuits(self, states: dict[str, str]) -> None:
        for upstream, state in states.items():
            self.circuit.labels(upstream).set(_CIRCUIT.get(state, 0))

    def render(self) -> bytes:
        return generate_latest(self.registry)


_log = logging.getLogger("genai.gateway.access")


def access_enabled() -> bool:
    return _log.isEnabledFor(logging.INFO)


def access_log(record: dict[str, Any]) -> None:
    """One JSON line per request (at INFO on ``genai.gateway.access``)."""
    if _log.isEnabledFor(logging.INFO):
        _log.info(orjson.dumps(record).decode())


def _tracer() -> Any:
    if not (os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("GENAI_OTEL")):
        return None
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    return trace.get_tracer("genai.gateway")


@contextlib.contextmanager
def span(name: str, attributes: dict[str, Any]) -> Iterator[Any]:
    """An OpenTelemetry span (yielded) while tracing is on (``GENAI_OTEL`` or an OTLP
    endpoint is set, and the SDK installed), else nothing (None): no trace leaves the
    process unless its operator configured where to."""
    tracer = _tracer()
    if tracer is None:
        yield None
        return
    with tracer.start_as_current_span(name, attributes=attributes) as current:
        yield current
