"""OpenTelemetry for a FastAPI app, when the OTEL variables ask for it and the `otel` extra is in.

By default (`APPKIT_TRACE_EXPORT=process`) a request's spans are `span_recorder`'s: each ends
as one record on the span queue, which a thread hands in batches to a child process that
rebuilds the SDK's spans and exports them (`span_export_process`). `thread` keeps the SDK's
own tracer provider and `BatchSpanProcessor`, exporting from a thread of the server. Either
way a collector that is down or hangs costs a request nothing (a full queue drops spans,
never waits). `RuntimeMiddleware` opens each request's server span (`server_spans`) and tags
it with the project and the rate-limit decision; the runtime's own calls (key authority,
Redis) are its children (`tracing`).
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
    from appkit_runtime.fastapi.span_queue import SpanQueue

logger = logging.getLogger("appkit_runtime")

# The process's tracer (made once), and what sends its spans: the span queue under
# `process`, the SDK's provider under `thread`.
_tracer: Any = None
_queue: SpanQueue | None = None
_provider: Any = None
# How long shutdown waits for the queued spans to reach the exporter process and for it to
# send them (`span_export_process.EXIT_SECONDS` of it).
FLUSH_SECONDS = 5.0
SCOPE = "appkit_runtime"


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

        tracer = _tracer_once(settings)
    except ImportError:
        logger.warning(
            "OTEL variables are set but the otel extra is not installed, so no traces: "
            "pip install '.[otel]' in a service made from the template, "
            "else pip install 'appkit-runtime[otel]'"
        )
        return None
    use_tracer(tracer)
    return ServerSpans(tracer)


def _tracer_once(settings: Settings) -> Any:
    """The process's tracer (made once) for `OTEL_SERVICE_NAME`, else `APPKIT_SERVICE_NAME`.

    Its provider is not made the global one: FastAPI's own telemetry (0.16x) and other
    instrumentations would then trace every request a second time, several spans each.
    """
    global _tracer, _queue, _provider
    if _tracer is None:
        from opentelemetry.sdk.trace import TracerProvider

        from appkit_runtime.fastapi.span_resource import service_resource

        resource = service_resource(os.environ.get("OTEL_SERVICE_NAME") or settings.service_name)
        # The sampler and id generator the SDK's provider takes from the OTEL variables.
        provider = TracerProvider(
            resource=resource, shutdown_on_exit=settings.trace_export == "thread"
        )
        if settings.trace_export == "thread":
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            for exporter in span_exporters():
                provider.add_span_processor(BatchSpanProcessor(exporter))
            _provider = provider
            _tracer = provider.get_tracer(SCOPE)
        else:
            from appkit_runtime.fastapi.span_export_process import ExportProcess
            from appkit_runtime.fastapi.span_queue import SpanQueue
            from appkit_runtime.fastapi.span_recorder import SpanRecorder

            export = ExportProcess(resource, settings.installed_log_style, settings.log_level)
            _queue = SpanQueue(export)
            _tracer = SpanRecorder(
                _queue.put, provider.sampler, provider.id_generator, (SCOPE, None, None)
            )
    return _tracer


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


def start_traces() -> None:
    """At the lifespan's start: start the span exporter process, so that it has imported the
    SDK before the first spans reach it (a burst of them would otherwise fill the queue while
    it starts)."""
    if _queue is not None:
        _queue.start()


async def flush_traces(seconds: float = FLUSH_SECONDS) -> None:
    """At the lifespan's end: export the spans still queued and let the exporter process
    send them and exit, waiting at most `seconds` (then the exporter process is killed).

    uvicorn re-raises SIGTERM once it has shut down, so the process ends without running its
    exit handlers, the SDK's flush among them; without this, `docker stop` lost every span
    still queued and left the exporter process to retry alone.
    """
    queue, provider = _queue, _provider
    if queue is None and provider is None:
        return
    done = threading.Event()

    def flush() -> None:
        try:
            if queue is not None:
                queue.close()  # the next span, if any, starts the queue again
            else:
                provider.force_flush()
        finally:
            done.set()

    # A daemon thread: a collector that hangs must not hold the shutdown past `seconds`.
    threading.Thread(target=flush, name="appkit-trace-flush", daemon=True).start()
    if not await asyncio.to_thread(done.wait, seconds) and queue is not None:
        queue.export.kill()
