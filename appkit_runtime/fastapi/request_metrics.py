"""Prometheus request count and latency, labelled by route template, never by raw path."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter(
    "appkit_http_requests_total",
    "HTTP requests answered, by route template, method and status.",
    ["service", "route", "method", "status"],
)
LATENCY = Histogram(
    "appkit_http_request_duration_seconds",
    "Time to the first byte of the response, by route template and method.",
    ["service", "route", "method"],
)
# Requests that matched no route share one label, so scanners cannot grow the series.
UNMATCHED = "<unmatched>"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestMetricsMiddleware:
    """Pure ASGI middleware: counts each response and observes its latency."""

    def __init__(self, app: ASGIApp, *, service: str) -> None:
        self.app = app
        self.service = service
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._histograms: dict[tuple[str, str], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def send_and_count(message: Message) -> None:
            if message["type"] == "http.response.start":
                self._observe(scope, message["status"], time.perf_counter() - started)
            await send(message)

        await self.app(scope, receive, send_and_count)

    def _observe(self, scope: Scope, status: int, seconds: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", UNMATCHED) if route is not None else UNMATCHED
        method = scope["method"] if scope["method"] in METHODS else "OTHER"
        counter = self._counters.get((template, method, status))
        if counter is None:
            counter = REQUESTS.labels(self.service, template, method, str(status))
            self._counters[(template, method, status)] = counter
        counter.inc()
        histogram = self._histograms.get((template, method))
        if histogram is None:
            histogram = LATENCY.labels(self.service, template, method)
            self._histograms[(template, method)] = histogram
        histogram.observe(seconds)
