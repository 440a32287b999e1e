"""Histogram buckets shared by the Prometheus metrics of every process (gateway, loader)."""

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
