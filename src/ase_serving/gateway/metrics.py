"""Gateway metrics (Prometheus): requests by service, mode and code; latency; open sessions; queue waits.

With several worker processes, each writes its values to files under
``PROMETHEUS_MULTIPROC_DIR`` (set by :func:`ase_serving.gateway.server.serve` before the workers
start) and ``/metrics`` sums them over every worker; with one process, the values stay in memory
in plain dicts, and ``prometheus_client`` (5 MB) is imported by the first scrape.
Labelled children are cached so that the hot path pays a dict lookup and an ``inc()``.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterator
from typing import Any

from ase_serving.buckets import LATENCY_BUCKETS

_QUEUE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


_DOCS = {
    "requests": "Requests answered (once) and sessions ended, by service, mode and code",
    "latency": "Once request latency through the gateway (body read to response), by service",
    "queue": "Time requests waited for a free licence, by service",
    "frames": "Session frames, by service and direction (in = from clients, out = to clients)",
    "sessions": "WebSocket sessions open now, by service",
}


def multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class _Tally:
    """Counters and histograms kept in plain dicts and exported when scraped (one process only).

    A labelled Prometheus child costs microseconds per ``inc``/``observe`` (a lock, a bucket
    loop); on the request path that was a tenth of the gateway's time. Several worker processes
    need Prometheus' shared files instead: there :class:`GatewayMetrics` uses the real metrics.
    """

    def __init__(self) -> None:
        self.gauges: dict[str, tuple[str, list[str], dict[tuple[Any, ...], float]]] = {}
        self.counters: dict[str, tuple[str, list[str], dict[tuple[Any, ...], int]]] = {}
        self.histograms: dict[str, tuple[str, list[str], list[float], dict[tuple[Any, ...], list[Any]]]] = {}

    def gauge(self, name: str, doc: str, labels: list[str]) -> dict[tuple[Any, ...], float]:
        values: dict[tuple[Any, ...], float] = {}
        self.gauges[name] = (doc, labels, values)
        return values

    def counter(self, name: str, doc: str, labels: list[str]) -> dict[tuple[Any, ...], int]:
        values: dict[tuple[Any, ...], int] = {}
        self.counters[name] = (doc, labels, values)
        return values

    def histogram(
        self, name: str, doc: str, labels: list[str], buckets: tuple[float, ...]
    ) -> tuple[list[float], dict[tuple[Any, ...], list[Any]]]:
        bounds = sorted(buckets)
        values: dict[tuple[Any, ...], list[Any]] = {}
        self.histograms[name] = (doc, labels, bounds, values)
        return bounds, values

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
        from prometheus_client.utils import floatToGoString

        for name, (doc, labels, levels) in self.gauges.items():
            gfamily = GaugeMetricFamily(name, doc, labels=labels)
            for key, v in list(levels.items()):
                gfamily.add_metric([str(k) for k in key], v)
            yield gfamily
        for name, (doc, labels, counts) in self.counters.items():
            family = CounterMetricFamily(name, doc, labels=labels)
            for key, n in list(counts.items()):
                family.add_metric([str(k) for k in key], n)
            yield family
        for name, (doc, labels, bounds, hists) in self.histograms.items():
            hfamily = HistogramMetricFamily(name, doc, labels=labels)
            for key, (counts, total) in list(hists.items()):
                running, buckets = 0, []
                for bound, n in zip([*bounds, float("inf")], counts, strict=True):
                    running += n
                    le = "+Inf" if bound == float("inf") else floatToGoString(bound)  # type: ignore[no-untyped-call]
                    buckets.append((le, running))
                hfamily.add_metric([str(k) for k in key], buckets, total)
            yield hfamily


def _observe(
    bounds: list[float], values: dict[tuple[Any, ...], list[Any]], key: tuple[Any, ...], v: float
) -> None:
    h = values.get(key)
    if h is None:
        h = values[key] = [[0] * (len(bounds) + 1), 0.0]
    h[0][bisect.bisect_left(bounds, v)] += 1
    h[1] += v


class GatewayMetrics:
    def __init__(self) -> None:
        self._cache: dict[tuple[Any, ...], Any] = {}
        # One process: every metric in plain dicts (see _Tally), exported when scraped.
        self._tally: _Tally | None = None
        self._registry: Any = None
        self._t_requests: dict[tuple[Any, ...], int] | None = None
        self._t_frames: dict[tuple[Any, ...], int] | None = None
        self._t_sessions: dict[tuple[Any, ...], float] | None = None
        self._t_latency: tuple[list[float], dict[tuple[Any, ...], list[Any]]] = ([], {})
        self._t_queue: tuple[list[float], dict[tuple[Any, ...], list[Any]]] | None = None
        if multiprocess():
            self._prometheus_metrics()
            return
        self._tally = tally = _Tally()
        self._t_sessions = tally.gauge("ase_gateway_sessions_open", _DOCS["sessions"], ["service"])
        self._t_requests = tally.counter(
            "ase_gateway_requests", _DOCS["requests"], ["service", "mode", "code"]
        )
        self._t_frames = tally.counter(
            "ase_gateway_session_frames", _DOCS["frames"], ["service", "direction"]
        )
        self._t_latency = tally.histogram(
            "ase_gateway_request_seconds", _DOCS["latency"], ["service", "mode"], LATENCY_BUCKETS
        )
        self._t_queue = tally.histogram(
            "ase_gateway_queue_wait_seconds", _DOCS["queue"], ["service"], _QUEUE_BUCKETS
        )

    def _prometheus_metrics(self) -> None:
        """Several worker processes: Prometheus' metrics, which share values through files."""
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self._registry = reg = CollectorRegistry()
        self._requests = Counter(
            "ase_gateway_requests",
            _DOCS["requests"],
            ["service", "mode", "code"],
            registry=reg,
        )
        self._latency = Histogram(
            "ase_gateway_request_seconds",
            _DOCS["latency"],
            ["service", "mode"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self._sessions = Gauge(
            "ase_gateway_sessions_open",
            _DOCS["sessions"],
            ["service"],
            registry=reg,
            multiprocess_mode="livesum",
        )
        self._queue = Histogram(
            "ase_gateway_queue_wait_seconds",
            _DOCS["queue"],
            ["service"],
            buckets=_QUEUE_BUCKETS,
            registry=reg,
        )
        self._frames = Counter(
            "ase_gateway_session_frames",
            _DOCS["frames"],
            ["service", "direction"],
            registry=reg,
        )

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._cache.get(key)
        if child is None:
            child = self._cache[key] = metric.labels(*labels)
        return child

    def request(self, service: str, mode: str, code: int, seconds: float | None = None) -> None:
        counts = self._t_requests
        if counts is not None:
            key = (service, mode, code)
            counts[key] = counts.get(key, 0) + 1
            if seconds is not None:
                _observe(self._t_latency[0], self._t_latency[1], (service, mode), seconds)
            return
        self._child(self._requests, service, mode, str(code)).inc()
        if seconds is not None:
            self._child(self._latency, service, mode).observe(seconds)

    def queued(self, service: str, seconds: float) -> None:
        if self._t_queue is not None:
            _observe(self._t_queue[0], self._t_queue[1], (service,), seconds)
            return
        self._child(self._queue, service).observe(seconds)

    def session_opened(self, service: str) -> None:
        levels = self._t_sessions
        if levels is not None:
            levels[(service,)] = levels.get((service,), 0.0) + 1
            return
        self._child(self._sessions, service).inc()

    def session_closed(self, service: str) -> None:
        levels = self._t_sessions
        if levels is not None:
            levels[(service,)] = levels.get((service,), 0.0) - 1
            return
        self._child(self._sessions, service).dec()

    def frame(self, service: str, direction: str) -> None:
        counts = self._t_frames
        if counts is not None:
            key = (service, direction)
            counts[key] = counts.get(key, 0) + 1
            return
        self._child(self._frames, service, direction).inc()

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if multiprocess():
            from prometheus_client.multiprocess import MultiProcessCollector

            reg = CollectorRegistry()
            MultiProcessCollector(reg)  # type: ignore[no-untyped-call]
            return generate_latest(reg), CONTENT_TYPE_LATEST
        if self._registry is None:
            self._registry = CollectorRegistry()
            self._registry.register(self._tally)
        return generate_latest(self._registry), CONTENT_TYPE_LATEST
