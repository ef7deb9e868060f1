"""Prometheus metrics, one registry per process (served at GET /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["Metrics"]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.http_requests = Counter(
            "opsgate_http_requests_total", "HTTP requests served", ["path", "status"], registry=self.registry
        )
        self.http_latency = Histogram(
            "opsgate_http_request_seconds",
            "Time to answer an HTTP request",
            ["path"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 3),
            registry=self.registry,
        )
        self.requests_expired = Counter(
            "opsgate_requests_expired_total", "Change requests expired by the sweep", registry=self.registry
        )
        self.database_up = Gauge(
            "opsgate_database_up", "1 when the database answered", registry=self.registry
        )
