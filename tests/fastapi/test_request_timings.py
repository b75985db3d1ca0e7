"""The request timings export exactly what prometheus_client's own Counter and Histogram would."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from appkit_runtime.fastapi.request_metrics import RequestTimings

OBSERVED = [
    (200, 0.001),
    (200, 0.005),  # on a bucket bound: counted in that bucket ("le")
    (200, 0.0051),
    (404, 0.3),
    (200, 7.5),
    (500, 42.0),  # past the last finite bound: only in +Inf
]


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in registry.collect()
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


def test_request_timings_match_prometheus_client_series() -> None:
    ours = CollectorRegistry()
    ours.register(timings := RequestTimings())
    reference = CollectorRegistry()
    requests = Counter(
        "appkit_http_requests",
        "HTTP requests answered, by route template, method and status.",
        ["service", "route", "method", "status"],
        registry=reference,
    )
    latency = Histogram(
        "appkit_http_request_duration_seconds",
        "Time to the first byte of the response, by route template and method.",
        ["service", "route", "method"],
        registry=reference,
    )
    for status, seconds in OBSERVED:
        timings.observe("svc", "/items/{item_id}", "GET", status, seconds)
        requests.labels("svc", "/items/{item_id}", "GET", str(status)).inc()
        latency.labels("svc", "/items/{item_id}", "GET").observe(seconds)
    timings.observe("svc", "/other", "POST", 201, 0.02)
    requests.labels("svc", "/other", "POST", "201").inc()
    latency.labels("svc", "/other", "POST").observe(0.02)

    assert samples(ours) == samples(reference)
    bucket = ("le", "0.005"), ("method", "GET"), ("route", "/items/{item_id}"), ("service", "svc")
    assert samples(ours)[("appkit_http_request_duration_seconds_bucket", bucket)] == 2.0
