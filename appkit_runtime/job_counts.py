"""`appkit_jobs_total`: jobs counted for usage, by service, route template and method.

A dict increment under a lock per job, exported by a collector at scrape time, instead of a
`prometheus_client` counter, whose `inc` costs three calls and a lock of its own on the
protected path of every request.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

JobLabels = tuple[str, str, str]  # service, route template, method


class JobCounts(Collector):
    """Jobs per (service, route, method) since the process started (or `clear()`)."""

    def __init__(self) -> None:
        self._counts: dict[JobLabels, int] = {}
        self._lock = threading.Lock()  # Django's sync views count from many threads

    def add(self, labels: JobLabels) -> None:
        with self._lock:
            self._counts[labels] = self._counts.get(labels, 0) + 1

    def clear(self) -> None:
        """Forget every count (tests start from zero)."""
        with self._lock:
            self._counts.clear()

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "appkit_jobs",
            "Jobs counted for usage, by route template",
            labels=["service", "route", "method"],
        )
        with self._lock:
            snapshot = list(self._counts.items())
        for labels, count in snapshot:
            family.add_metric(list(labels), count)
        yield family


JOB_COUNTS = JobCounts()
REGISTRY.register(JOB_COUNTS)
