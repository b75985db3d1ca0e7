"""Request ids, the access line and the server span's attributes, in one pure ASGI middleware.

A pure ASGI middleware (not `BaseHTTPMiddleware`, whose task and stream per request cost a
bare endpoint much of its throughput): it sets the request id before the app runs, adds the
`X-Request-ID` header at the response start, and when the app returns writes one access line
from what the protected chain left on the request's state (token, rate-limit decision): in
JSON straight to the log stream (`access_line`), in text through `logging`. With tracing on,
the request runs inside its server span (`server_spans`), tagged the same way.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from appkit_runtime.access_line import ACCESS_LOGGER, JsonAccessLine
from appkit_runtime.fastapi.health import HEALTH_ROUTES
from appkit_runtime.fastapi.request_metrics import UNMATCHED
from appkit_runtime.fastapi.route_template import route_template
from appkit_runtime.ratelimit.decision import DECISION_STATE
from appkit_runtime.request_context import REQUEST_ID, request_id_for

if TYPE_CHECKING:
    from appkit_runtime.fastapi.server_spans import ServerSpans

_HEADER = b"x-request-id"
# The W3C trace-context headers a caller's span travels in (read only when tracing is on).
_PROPAGATION_HEADERS = (b"traceparent", b"tracestate")
_access = logging.getLogger(ACCESS_LOGGER)
# The text format shows the fields in the message (and as the record's extras).
_ACCESS_MESSAGE = "%s %s %s %.1fms org=%s project=%s key=%s ratelimit=%s remaining=%s"


class RequestContextMiddleware:
    """Give each HTTP request an id (the caller's if acceptable), echo it, log the outcome,
    and, when tracing is on, run it inside its server span."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        access_log: bool,
        json_line: JsonAccessLine | None = None,
        server_spans: ServerSpans | None = None,
    ) -> None:
        self.app = app
        self.access_log = access_log
        self.json_line = json_line
        self.server_spans = server_spans

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        spans = self.server_spans
        given = carrier = None
        for name, value in scope["headers"]:
            if name == _HEADER:
                # Several lines are one list ("a, b"), which is no acceptable id.
                given = "" if given is not None else value.decode("latin-1")
            elif spans is not None and name in _PROPAGATION_HEADERS:
                carrier = carrier or {}
                carrier[name.decode("latin-1")] = value.decode("latin-1")
        request_id = request_id_for(given)
        # Each request its own state (uvicorn copies the lifespan state; not every server
        # does), so what the chain leaves there is this request's alone.
        scope["state"] = dict(scope.get("state") or ())
        header = (_HEADER, request_id.encode("latin-1"))
        token = REQUEST_ID.set(request_id)
        span = span_token = None
        if spans is not None and scope["path"] not in HEALTH_ROUTES:
            span, span_token = spans.open(scope, carrier)
        started = time.perf_counter()
        status = 500
        error: BaseException | None = None

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
                if span is not None:
                    spans.tag(span, scope, status)  # type: ignore[union-attr]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except BaseException as escaped:
            error = escaped
            raise
        finally:
            try:
                self._report(scope, request_id, status, time.perf_counter() - started)
            finally:
                if span is not None:
                    spans.close(span, span_token, error)  # type: ignore[union-attr]
                # An escaping exception keeps the id set: the server logs its traceback next,
                # in this request's own task, and that line should carry the id too.
                if error is None:
                    REQUEST_ID.reset(token)

    def _report(self, scope: Scope, request_id: str, status: int, seconds: float) -> None:
        """The access line, from the state the chain left."""
        if not self.access_log or not _access.isEnabledFor(logging.INFO):
            return
        state = scope["state"]
        # A known key refused for its product or scopes (403) is named too, never the key.
        project_token = state.get("project_token") or state.get("denied_project_token")
        decision, remaining = state.get(DECISION_STATE, (None, None))
        route = scope.get("route")
        if route is not None and HEALTH_ROUTES.get(route.path) is route:
            return  # probes and scrapes every few seconds would drown the log
        org_id = project_id = key_id = None
        if project_token is not None:
            org_id, project_id = project_token.org_id, project_token.project_id
            key_id = project_token.key_id
        route_path = route_template(scope, UNMATCHED)
        fields = {
            "method": scope["method"],
            "route": route_path,
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
            "org_id": org_id,
            "project_id": project_id,
            "key_id": key_id,
            "ratelimit": decision,
            "ratelimit_remaining": remaining,
        }
        if self.json_line is not None:
            self.json_line.write(request_id, f"{scope['method']} {route_path} {status}", fields)
            return
        # The message shows the same fields, in this order, with `-` for those not known.
        shown = ["-" if value is None else value for value in fields.values()]
        fields["request_id"] = request_id  # also where no RequestIdFilter runs (pytest)
        _access.info(_ACCESS_MESSAGE, *shown, extra=fields)
