"""Spans around the runtime's own outside calls (key authority, Redis), when tracing is on.

Tracing is off unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_TRACES_EXPORTER`) is set and
the app factory installed a tracer (`appkit_runtime.fastapi.tracing`); off, nothing from
OpenTelemetry is imported and a traced call costs one `is None` test.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import wraps
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

# The SDK's tracer once installed; typed loosely so this module never imports OpenTelemetry.
_tracer: Any = None


def tracing_requested(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the OpenTelemetry variables ask for traces (and the SDK is not disabled)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    return bool(
        exporter
        or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def use_tracer(tracer: Any) -> None:
    """Make `tracer` (an OpenTelemetry `Tracer`, or None to stop) the runtime's."""
    global _tracer
    _tracer = tracer


@contextmanager
def span(name: str) -> Iterator[None]:
    """A child span of the current one named `name`, when tracing is on."""
    if _tracer is None:
        yield
        return
    with _tracer.start_as_current_span(name):
        yield


def traced(name: str) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Decorate a coroutine function so that each call is a span named `name`."""

    def decorate(function: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @wraps(function)
        async def run(*args: P.args, **kwargs: P.kwargs) -> R:
            if _tracer is None:
                return await function(*args, **kwargs)
            with _tracer.start_as_current_span(name):
                return await function(*args, **kwargs)

        return run

    return decorate
