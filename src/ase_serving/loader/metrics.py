"""Loader metrics (Prometheus) and the ``/metrics`` + ``/health`` HTTP endpoint of the supervisor.

Counts are kept in plain dicts and numbers, so the hot path pays one dict lookup and an addition;
the licence and session gauges are computed when scraped, so they cost nothing per request.
``prometheus_client`` (5 MB of memory) is imported by the first scrape, to write the text format.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

from ase_serving.buckets import LATENCY_BUCKETS


class LoaderMetrics:
    """The loader's metrics, its own (several loaders may share a process in tests).

    Exported as before with ``prometheus_client``'s own metrics: ``ase_loader_requests`` and
    ``ase_loader_errors`` by method and code, the ``ase_loader_once_seconds`` histogram, the
    licence and session gauges, ``ase_loader_worker_restarts`` and ``ase_loader_info``.
    """

    def __init__(self, service: str, version: str) -> None:
        self.info = {"service": service, "version": version}
        self.created = time.time()
        #: (method, code) -> [calls, when the first was counted]
        self._calls: dict[tuple[str, int], list[float]] = {}
        self._bounds = [float(b) for b in LATENCY_BUCKETS]
        #: Calls per bucket (not cumulative), the last for +Inf; then the sum of the seconds.
        self._latency = [0] * (len(LATENCY_BUCKETS) + 1)
        self._latency_sum = 0.0
        self._restarts = 0
        self._gauges: dict[str, Callable[[], float]] = {}
        self._registry: Any = None
        self.observe_once: Callable[[float], None] = self._observe

    def count(self, method: str, code: int, n: int = 1) -> None:
        calls = self._calls.get((method, code))
        if calls is None:
            calls = self._calls[(method, code)] = [0, time.time()]
        calls[0] += n

    def _observe(self, seconds: float) -> None:
        self._latency[bisect.bisect_left(self._bounds, seconds)] += 1
        self._latency_sum += seconds

    def restarted(self, _worker: Any = None) -> None:
        self._restarts += 1

    def direct_calls(self, _worker: Any, stats: dict[str, Any]) -> None:
        """Count what a worker reports of the once calls and sessions gateways sent it directly
        (OP_STATS)."""
        for code, n in stats.get("codes", {}).items():
            self.count("once", int(code), n)
        for code, n in stats.get("session_codes", {}).items():
            self.count("session", int(code), n)
        for seconds in stats.get("seconds", ()):
            self.observe_once(seconds)

    def bind(
        self, lic_total: Callable[[], float], lic_busy: Callable[[], float], sessions: Callable[[], float]
    ) -> None:
        """Compute the gauges from the pool's state when scraped."""
        self._gauges = {
            "ase_loader_licences": lic_total,
            "ase_loader_licences_busy": lic_busy,
            "ase_loader_sessions": sessions,
        }

    def render(self) -> bytes:
        from prometheus_client import CollectorRegistry, generate_latest

        if self._registry is None:
            self._registry = CollectorRegistry(auto_describe=False)
            self._registry.register(self)
        return generate_latest(self._registry)

    def collect(self) -> Iterator[Any]:
        """The metric families (``prometheus_client``'s collector interface)."""
        from prometheus_client import metrics as prom_metrics
        from prometheus_client.metrics_core import Metric
        from prometheus_client.utils import floatToGoString

        created = getattr(prom_metrics, "_use_created", True)

        def family(name: str, doc: str, kind: str) -> Metric:
            return Metric(name, doc, kind)

        calls = list(self._calls.items())
        requests = family("ase_loader_requests", "Calls answered, by method and code", "counter")
        errors = family("ase_loader_errors", "Calls answered with a non-zero code, by code", "counter")
        for (method, code), (n, since) in calls:
            labels = {"method": method, "code": str(code)}
            for metric in (requests, errors) if code else (requests,):
                metric.add_sample(metric.name + "_total", labels, float(n))
                if created:
                    metric.add_sample(metric.name + "_created", labels, since)
        yield requests
        yield errors
        latency = family("ase_loader_once_seconds", "Once call latency in the loader", "histogram")
        running = 0
        for bound, n in zip([*self._bounds, float("inf")], list(self._latency), strict=True):
            running += n
            le = "+Inf" if bound == float("inf") else floatToGoString(bound)  # type: ignore[no-untyped-call]
            latency.add_sample("ase_loader_once_seconds_bucket", {"le": le}, float(running))
        latency.add_sample("ase_loader_once_seconds_count", {}, float(running))
        latency.add_sample("ase_loader_once_seconds_sum", {}, self._latency_sum)
        if created:
            latency.add_sample("ase_loader_once_seconds_created", {}, self.created)
        yield latency
        for name, doc in (
            ("ase_loader_licences", "Licence slots offered (ready workers)"),
            ("ase_loader_licences_busy", "Licence slots in use"),
            ("ase_loader_sessions", "Open sessions"),
        ):
            gauge = family(name, doc, "gauge")
            fn = self._gauges.get(name)
            gauge.add_sample(name, {}, float(fn()) if fn is not None else 0.0)
            yield gauge
        restarts = family("ase_loader_worker_restarts", "Worker processes restarted", "counter")
        restarts.add_sample("ase_loader_worker_restarts_total", {}, float(self._restarts))
        if created:
            restarts.add_sample("ase_loader_worker_restarts_created", {}, self.created)
        yield restarts
        info = family("ase_loader_info", "The served service", "gauge")
        info.add_sample("ase_loader_info", dict(self.info), 1.0)
        yield info


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
                body = metrics.render()
                from prometheus_client import CONTENT_TYPE_LATEST

                self._send(200, CONTENT_TYPE_LATEST, body)
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
