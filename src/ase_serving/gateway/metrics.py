"""Gateway metrics (Prometheus): requests by service, mode and code; latency; open sessions; queue waits.

With several worker processes, each writes its values to files under
``PROMETHEUS_MULTIPROC_DIR`` (set by :func:`ase_serving.gateway.server.serve` before the workers
start) and ``/metrics`` sums them over every worker; with one process, the values stay in memory.
Labelled children are cached so that the hot path pays a dict lookup and an ``inc()``.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from ase_serving.loader.metrics import LATENCY_BUCKETS

_QUEUE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


def multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = reg = CollectorRegistry()
        self._requests = Counter(
            "ase_gateway_requests",
            "Requests answered (once) and sessions ended, by service, mode and code",
            ["service", "mode", "code"],
            registry=reg,
        )
        self._latency = Histogram(
            "ase_gateway_request_seconds",
            "Once request latency through the gateway (body read to response), by service",
            ["service", "mode"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self._sessions = Gauge(
            "ase_gateway_sessions_open",
            "WebSocket sessions open now, by service",
            ["service"],
            registry=reg,
            multiprocess_mode="livesum",
        )
        self._queue = Histogram(
            "ase_gateway_queue_wait_seconds",
            "Time requests waited for a free licence, by service",
            ["service"],
            buckets=_QUEUE_BUCKETS,
            registry=reg,
        )
        self._frames = Counter(
            "ase_gateway_session_frames",
            "Session frames, by service and direction (in = from clients, out = to clients)",
            ["service", "direction"],
            registry=reg,
        )
        self._cache: dict[tuple[Any, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._cache.get(key)
        if child is None:
            child = self._cache[key] = metric.labels(*labels)
        return child

    def request(self, service: str, mode: str, code: int, seconds: float | None = None) -> None:
        self._child(self._requests, service, mode, str(code)).inc()
        if seconds is not None:
            self._child(self._latency, service, mode).observe(seconds)

    def queued(self, service: str, seconds: float) -> None:
        self._child(self._queue, service).observe(seconds)

    def session_opened(self, service: str) -> None:
        self._child(self._sessions, service).inc()

    def session_closed(self, service: str) -> None:
        self._child(self._sessions, service).dec()

    def frame(self, service: str, direction: str) -> None:
        self._child(self._frames, service, direction).inc()

    def render(self) -> tuple[bytes, str]:
        if multiprocess():
            reg = CollectorRegistry()
            MultiProcessCollector(reg)  # type: ignore[no-untyped-call]
            return generate_latest(reg), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
