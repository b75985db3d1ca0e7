"""OpenTelemetry for a FastAPI app, when the OTEL variables ask for it and the `otel` extra is in.

One tracer provider per process, exporting through a `BatchSpanProcessor`: spans are queued
in memory and handed on by a background thread, to a child process that encodes and sends
them (`span_export_process`), so a collector that is down or hangs costs a request nothing
(a full queue drops spans, never waits). `RuntimeMiddleware` opens each
request's server span (`server_spans`) and tags it with the project and the rate-limit
decision; the runtime's own calls (key authority, Redis) are its children (`tracing`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
from typing import TYPE_CHECKING, Any

from appkit_runtime.settings import Settings
from appkit_runtime.tracing import tracing_requested, use_tracer
from appkit_runtime.tracing_settings import check_otel_variables, trace_exporters, trace_protocol

if TYPE_CHECKING:
    from appkit_runtime.fastapi.server_spans import ServerSpans

logger = logging.getLogger("appkit_runtime")

_provider: Any = None
# The exporter processes' parent ends, closed at shutdown.
_process_exporters: list[Any] = []
# How long shutdown waits for the queued spans to reach the exporter process and for it to
# send them (`span_export_process.EXIT_SECONDS` of it).
FLUSH_SECONDS = 5.0


def instrument_tracing(settings: Settings) -> ServerSpans | None:
    """The server-span hooks when the OTEL variables ask for traces, else None.

    None (and nothing imported) when they do not ask, or when the `otel` extra is missing
    (one warning: a platform may set the variables for every service it runs). Variables the
    SDK would misread raise `ConfigurationError`.
    """
    if not tracing_requested():
        return None
    check_otel_variables()
    try:
        from appkit_runtime.fastapi.server_spans import ServerSpans

        provider = _tracer_provider(settings)
    except ImportError:
        logger.warning(
            "OTEL variables are set but the otel extra is not installed, so no traces: "
            "pip install 'appkit-runtime[otel]'"
        )
        return None
    tracer = provider.get_tracer("appkit_runtime")
    use_tracer(tracer)
    return ServerSpans(tracer)


def _tracer_provider(settings: Settings) -> Any:
    """The process's provider (made once): `OTEL_SERVICE_NAME`, else `APPKIT_SERVICE_NAME`;
    spans exported from a child process unless `APPKIT_TRACE_EXPORT=thread`."""
    global _provider
    if _provider is None:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        from appkit_runtime.fastapi.span_resource import service_resource

        name = os.environ.get("OTEL_SERVICE_NAME") or settings.service_name
        resource = service_resource(name)
        provider = TracerProvider(resource=resource)
        exporters = batch_exporters(settings, resource)
        for exporter in exporters:
            provider.add_span_processor(BatchSpanProcessor(exporter))
        # Not made the global provider: FastAPI's own telemetry (0.16x) and other
        # instrumentations would then trace every request a second time, several spans each.
        _provider = provider
    return _provider


def batch_exporters(settings: Settings, resource: Any) -> list[Any]:
    """What the batch processor hands spans to: the child process that exports them
    (`APPKIT_TRACE_EXPORT=process`), or the SDK's exporters in this process (`thread`)."""
    if settings.trace_export == "thread":
        return span_exporters()
    from appkit_runtime.fastapi.span_export_process import ProcessSpanExporter

    exporter = ProcessSpanExporter(resource, settings.installed_log_style, settings.log_level)
    _process_exporters.append(exporter)
    return [exporter]


def span_exporters() -> list[Any]:
    """Those `OTEL_TRACES_EXPORTER` names: `console`, or OTLP over HTTP/protobuf (the default)
    or gRPC as `OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL` says; endpoints and timeouts from the
    variables."""
    exporters: list[Any] = []
    for name in trace_exporters():
        if name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            # stderr: stdout is the log's, one JSON object a line in production.
            exporters.append(ConsoleSpanExporter(out=sys.stderr))
        elif trace_protocol() == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            exporters.append(OTLPSpanExporter())
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[assignment]
                OTLPSpanExporter,
            )

            exporters.append(OTLPSpanExporter())
    return exporters


async def flush_traces(seconds: float = FLUSH_SECONDS) -> None:
    """At the lifespan's end: export the spans still queued and let each exporter process
    send them and exit, waiting at most `seconds`.

    uvicorn re-raises SIGTERM once it has shut down, so the process ends without running its
    exit handlers, the SDK's flush among them; without this, `docker stop` lost every span
    still queued and left the exporter process to retry alone.
    """
    provider = _provider
    if provider is None:
        return
    done = threading.Event()

    def flush() -> None:
        try:
            provider.force_flush()
            for exporter in _process_exporters:
                exporter.shutdown()  # the next batch, if any, starts a new process
        finally:
            done.set()

    # A daemon thread: a collector that hangs must not hold the shutdown past `seconds`.
    threading.Thread(target=flush, name="appkit-trace-flush", daemon=True).start()
    await asyncio.to_thread(done.wait, seconds)
