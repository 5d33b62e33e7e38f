"""Prometheus metrics of a model server (one registry per server, never the global one)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["ServerMetrics"]

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "genai_serve_requests",
            "Requests by endpoint, model and HTTP status.",
            ["endpoint", "model", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "genai_serve_request_seconds",
            "Time to the last byte.",
            ["endpoint"],
            buckets=_LATENCY,
            registry=r,
        )
        self.first_token = Histogram(
            "genai_serve_time_to_first_token_seconds",
            "Time to the first streamed token.",
            buckets=_LATENCY,
            registry=r,
        )
        self.prompt_tokens = Counter(
            "genai_serve_prompt_tokens", "Prompt tokens processed.", ["model"], registry=r
        )
        self.generated_tokens = Counter(
            "genai_serve_generation_tokens", "Tokens generated.", ["model"], registry=r
        )
        self.in_flight = Gauge(
            "genai_serve_requests_in_flight", "Requests being answered.", registry=r
        )
        self.disconnects = Counter(
            "genai_serve_client_disconnects",
            "Generations cancelled because the client left.",
            registry=r,
        )
        self.adapters = Gauge("genai_serve_adapters_loaded", "LoRA adapters loaded.", registry=r)
        self.batch_size = Histogram(
            "genai_serve_batch_rows",
            "Rows per engine step.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=r,
        )
        self.step_seconds = Histogram(
            "genai_serve_step_seconds",
            "Duration of an engine step.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
            registry=r,
        )

    def observe_step(self, rows: int, seconds: float) -> None:
        """The engine's per-step callback (batch occupancy and step time)."""
        self.batch_size.observe(rows)
        self.step_seconds.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
