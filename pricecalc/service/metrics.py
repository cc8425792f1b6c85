"""Prometheus metrics (``GET /metrics``), in a registry of the application's own.

What the service can tell honestly: requests by route, method and status, and their
latency; decisions by kind, status and whether they were replayed; the time a decision
took from the calculator's call to its durable record (rules, store and sync together);
the size of each group of a ``/v1/batches`` body recorded with one commit. The store's
own sync time and the group commit's sizes across concurrent single requests are not
seen from here (the calculator does not report them), so they are not exported: a
counter that cannot be filled honestly is left out (docs/service.md).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "pricecalc_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ("route", "method", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "pricecalc_http_request_seconds",
            "Time from a request's arrival to its response, by route template.",
            ("route",),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.decisions = Counter(
            "pricecalc_decisions",
            "Decisions answered, by kind, status (approved, rejected) and replayed.",
            ("kind", "status", "replayed"),
            registry=self.registry,
        )
        self.decide_seconds = Histogram(
            "pricecalc_decide_seconds",
            "Time from the calculator's call to a durable decision (rules, store, sync).",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.decision_groups = Histogram(
            "pricecalc_decision_group_size",
            "Requests of POST /v1/decisions and /v1/voids recorded with one group commit.",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
            registry=self.registry,
        )
        self.batch_groups = Histogram(
            "pricecalc_batch_group_size",
            "Requests of a /v1/batches body recorded with one group commit.",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
            registry=self.registry,
        )

        # Each labelled child looked up once (prometheus_client's labels() validates and
        # locks on every call): the same child, so the same counts, found by a dict get.
        self._children: dict[tuple[Any, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def answered(self, route: str, method: str, status: int, seconds: float) -> None:
        """One request answered: counted by route, method and status, its latency kept."""
        self._child(self.requests, route, method, str(status)).inc()
        self._child(self.latency, route).observe(seconds)

    def decision(self, kind: str, status: str, replayed: bool) -> None:
        self._child(self.decisions, kind, status, "true" if replayed else "false").inc()

    def text(self) -> bytes:
        return generate_latest(self.registry)
