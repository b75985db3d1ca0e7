"""OpenTelemetry for a FastAPI app, when the OTEL variables ask for it and the `otel` extra is in.

One tracer provider per process, exporting through a `BatchSpanProcessor`: spans are queued
in memory and sent by a background thread, so a collector that is down or hangs costs a
request nothing (a full queue drops spans, never waits). The server span of each request gets
the project and the rate-limit decision from `RequestContextMiddleware`.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from fastapi import FastAPI

from appkit_runtime.fastapi.request_context import SpanAttributes
from appkit_runtime.tracing import tracing_requested, use_tracer

logger = logging.getLogger("appkit_runtime")

# Routes that orchestrators and Prometheus call every few seconds are not traced.
EXCLUDED_URLS = "/healthz$,/readyz$,/metrics$"
# Never written into a span even when the service asks to capture request headers.
SECRET_HEADERS = ["authorization", "x-api-key", "cookie", "proxy-authorization"]

_provider: Any = None


def instrument_tracing(app: FastAPI, service_name: str) -> SpanAttributes | None:
    """Trace `app` when the OTEL variables ask; return the server-span attribute setter.

    None (and nothing imported) when they do not ask, or when the `otel` extra is missing
    (one warning: a platform may set the variables for every service it runs).
    """
    if not tracing_requested():
        return None
    try:
        from opentelemetry import trace
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    except ImportError:
        logger.warning(
            "OTEL variables are set but the otel extra is not installed, so no traces: "
            "pip install 'appkit-runtime[otel]'"
        )
        return None
    provider = _tracer_provider(service_name)
    use_tracer(provider.get_tracer("appkit_runtime"))
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=provider,
        excluded_urls=EXCLUDED_URLS,
        exclude_spans=["receive", "send"],
        http_capture_headers_sanitize_fields=SECRET_HEADERS,
    )

    def set_server_attributes(attributes: dict[str, Any]) -> None:
        server_span = trace.get_current_span()
        if server_span.is_recording():
            server_span.set_attributes({k: v for k, v in attributes.items() if v is not None})

    return set_server_attributes


def _tracer_provider(service_name: str) -> Any:
    """The process's provider (made once): `OTEL_SERVICE_NAME`, else `APPKIT_SERVICE_NAME`."""
    global _provider
    if _provider is None:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        name = os.environ.get("OTEL_SERVICE_NAME") or service_name
        provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
        provider.add_span_processor(BatchSpanProcessor(_span_exporter()))
        trace.set_tracer_provider(provider)
        _provider = provider
    return _provider


def _span_exporter() -> Any:
    """`console`, or OTLP over HTTP/protobuf (the default) or gRPC as
    `OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL` says; endpoints and timeouts from the variables."""
    if os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
    )
    if protocol.strip().lower() == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[assignment]
            OTLPSpanExporter,
        )
    return OTLPSpanExporter()
