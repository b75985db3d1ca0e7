"""The server span of each request, opened and closed by `RuntimeMiddleware`.

Imported only when tracing is on. OpenTelemetry's FastAPI instrumentation cost a protected
request more than half its throughput in the bench (it matches every route again to name the
span and builds a dozen attributes from the raw request); this keeps what a trace of the
chain needs: the caller's trace context, one SERVER span named by route template, the status
and the chain's outcome.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import context, trace
from opentelemetry.propagate import extract
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from starlette.types import Scope

from appkit_runtime.fastapi.http_methods import KNOWN_METHODS, OTHER_METHOD
from appkit_runtime.ratelimit.decision import DECISION_STATE


def _span_method(method: str) -> str:
    """The method as a span name gives it: `HTTP` for one the conventions do not know."""
    return method if method in KNOWN_METHODS else "HTTP"


class ServerSpans:
    """Opens a request's server span as the current one and closes it."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self.tracer = tracer

    def open(self, scope: Scope, carrier: dict[str, str] | None) -> tuple[Span, object]:
        """Start the span (a child of the caller's when `carrier` holds its context)."""
        method = scope["method"]
        # The method only: every attribute costs each span about 3 µs of CPU in the SDK and
        # the OTLP encoder, and a scheme behind a proxy says nothing (always http).
        if method in KNOWN_METHODS:
            attributes = {"http.request.method": method}
        else:
            attributes = {
                "http.request.method": OTHER_METHOD,
                "http.request.method_original": method,
            }
        span = self.tracer.start_span(
            _span_method(method),
            context=extract(carrier) if carrier else None,
            kind=SpanKind.SERVER,
            attributes=attributes,
        )
        return span, context.attach(trace.set_span_in_context(span))

    def tag(self, span: Span, scope: Scope, status: int, route: str | None) -> None:
        """At the response start: name by route template (`route`, None when no route
        matched), status, project and decision."""
        if route is not None:
            span.update_name(f"{_span_method(scope['method'])} {route}")
        state = scope["state"]
        # A key that authenticated but was refused (403) names its project too, as the
        # access line does; a 401 has no project.
        project_token = state.get("project_token") or state.get("denied_project_token")
        decision, remaining = state.get(DECISION_STATE, (None, None))
        attributes: dict[str, Any] = {"http.response.status_code": status}
        if route is not None:
            attributes["http.route"] = route
        if project_token is not None:
            attributes["appkit.org_id"] = project_token.org_id
            attributes["appkit.project_id"] = project_token.project_id
        if decision is not None:
            attributes["appkit.ratelimit.decision"] = decision
        if remaining is not None:
            attributes["appkit.ratelimit.remaining"] = remaining
        span.set_attributes(attributes)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))

    def close(self, span: Span, token: object, error: BaseException | None) -> None:
        """End the span; an exception that escaped the app marks it as an error."""
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        context.detach(token)  # type: ignore[arg-type]
        span.end()
