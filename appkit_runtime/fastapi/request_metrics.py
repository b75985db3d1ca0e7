"""Prometheus request count and latency, labelled by route template, never by raw path.

Every request pays for this, so a response costs a dict lookup and three additions under a
lock (`RuntimeMiddleware` observes each at its response start); the Prometheus families are
built from those sums only when `/metrics` is scraped.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import REGISTRY, Histogram
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

# Requests that matched no route share one label, so scanners cannot grow the series.
UNMATCHED = "<unmatched>"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
BUCKETS = Histogram.DEFAULT_BUCKETS  # upper bounds in seconds, the last one +Inf


class RouteTimings:
    """One series (service, route, method): answers by status, latency buckets and sum."""

    __slots__ = ("buckets", "statuses", "total_seconds")

    def __init__(self) -> None:
        self.statuses: dict[int, int] = {}
        self.buckets = [0] * len(BUCKETS)
        self.total_seconds = 0.0


class RequestTimings(Collector):
    """Every series of the process, exported as `appkit_http_requests_total` and
    `appkit_http_request_duration_seconds` (time to the first byte of the response)."""

    def __init__(self) -> None:
        self._series: dict[tuple[str, str, str], RouteTimings] = {}
        self._lock = threading.Lock()

    def observe(self, service: str, route: str, method: str, status: int, seconds: float) -> None:
        key = (service, route, method)
        with self._lock:
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = RouteTimings()
            series.statuses[status] = series.statuses.get(status, 0) + 1
            series.buckets[bisect_left(BUCKETS, seconds)] += 1
            series.total_seconds += seconds

    def clear(self) -> None:
        """Forget every series (tests start each from zero)."""
        with self._lock:
            self._series.clear()

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "appkit_http_requests",
            "HTTP requests answered, by route template, method and status.",
            labels=["service", "route", "method", "status"],
        )
        latency = HistogramMetricFamily(
            "appkit_http_request_duration_seconds",
            "Time to the first byte of the response, by route template and method.",
            labels=["service", "route", "method"],
        )
        with self._lock:
            snapshot = [
                (key, dict(s.statuses), list(s.buckets), s.total_seconds)
                for key, s in self._series.items()
            ]
        for (service, route, method), statuses, buckets, total_seconds in snapshot:
            for status, count in statuses.items():
                requests.add_metric([service, route, method, str(status)], count)
            cumulative, running = [], 0
            for bound, count in zip(BUCKETS, buckets, strict=True):
                running += count
                cumulative.append((_bound_text(bound), running))
            latency.add_metric([service, route, method], cumulative, total_seconds)
        yield requests
        yield latency


def _bound_text(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


REQUEST_TIMINGS = RequestTimings()
REGISTRY.register(REQUEST_TIMINGS)
