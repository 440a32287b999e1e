"""Loader metrics (Prometheus) and the ``/metrics`` + ``/health`` HTTP endpoint of the supervisor.

Counters are cached per label set so the hot path pays one dict lookup and an ``inc()``; the
licence and session gauges are computed when scraped, so they cost nothing per request.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

#: Latency buckets (seconds) from 100 µs to 30 s: engines range from echo to large models.
LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
)


class LoaderMetrics:
    """The loader's metrics in a registry of its own (several loaders may share a process in tests)."""

    def __init__(self, service: str, version: str) -> None:
        self.registry = CollectorRegistry()
        labels = {"service": service, "version": version}
        reg = self.registry
        self._requests = Counter(
            "ase_loader_requests", "Calls answered, by method and code", ["method", "code"], registry=reg
        )
        self._errors = Counter(
            "ase_loader_errors",
            "Calls answered with a non-zero code, by code",
            ["method", "code"],
            registry=reg,
        )
        self._latency = Histogram(
            "ase_loader_once_seconds",
            "Once call latency in the loader",
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.lic_total = Gauge("ase_loader_licences", "Licence slots offered (ready workers)", registry=reg)
        self.lic_busy = Gauge("ase_loader_licences_busy", "Licence slots in use", registry=reg)
        self.sessions = Gauge("ase_loader_sessions", "Open sessions", registry=reg)
        self._restarts = Counter("ase_loader_worker_restarts", "Worker processes restarted", registry=reg)
        info = Gauge("ase_loader_info", "The served service", list(labels), registry=reg)
        info.labels(**labels).set(1)
        self._children: dict[tuple[str, int], Callable[[], None]] = {}
        self.observe_once: Callable[[float], None] = self._latency.observe

    def count(self, method: str, code: int) -> None:
        inc = self._children.get((method, code))
        if inc is None:
            req = self._requests.labels(method, str(code))
            if code:
                err = self._errors.labels(method, str(code))

                def inc() -> None:
                    req.inc()
                    err.inc()

            else:
                inc = req.inc
            self._children[(method, code)] = inc
        inc()

    def restarted(self, _worker: Any = None) -> None:
        self._restarts.inc()

    def bind(
        self, lic_total: Callable[[], float], lic_busy: Callable[[], float], sessions: Callable[[], float]
    ) -> None:
        """Compute the gauges from the pool's state when scraped."""
        self.lic_total.set_function(lic_total)
        self.lic_busy.set_function(lic_busy)
        self.sessions.set_function(sessions)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsServer:
    """``GET /metrics`` (Prometheus text) and ``GET /health`` (JSON; 200 when ok, else 503) in a thread."""

    def __init__(
        self, host: str, port: int, metrics: LoaderMetrics, health: Callable[[], dict[str, Any]]
    ) -> None:
        handler = _handler(metrics, health)
        self._httpd = ThreadingHTTPServer((host, port), handler)
        self._httpd.daemon_threads = True
        self.port: int = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="ase-metrics", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def _handler(metrics: LoaderMetrics, health: Callable[[], dict[str, Any]]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, CONTENT_TYPE_LATEST, metrics.render())
            elif path in ("/health", "/healthz"):
                doc = health()
                self._send(200 if doc.get("status") == "ok" else 503, "application/json", orjson.dumps(doc))
            else:
                self._send(404, "application/json", b'{"error": "not found: use /metrics or /health"}')

        def _send(self, status: int, ctype: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # no access log: scrapes every few seconds would drown the loader's own log

    return Handler
