"""The access line: one per request, written when the app has answered.

Its fields come from what the protected chain left on the request's state (token, rate-limit
decision): in JSON straight to the log stream (`JsonAccessLine`), in text through `logging`.
"""

from __future__ import annotations

import logging
import time

from starlette.types import Scope

from appkit_runtime.access_line import ACCESS_LOGGER, JsonAccessLine
from appkit_runtime.fastapi.health import HEALTH_ROUTES
from appkit_runtime.fastapi.http_methods import known_method
from appkit_runtime.fastapi.request_metrics import UNMATCHED
from appkit_runtime.fastapi.route_template import route_template
from appkit_runtime.ratelimit.decision import DECISION_STATE

_access = logging.getLogger(ACCESS_LOGGER)
# The text format shows the fields in the message (and as the record's extras).
_ACCESS_MESSAGE = "%s %s %s %.1fms org=%s project=%s key=%s ratelimit=%s remaining=%s"


class AccessLog:
    """Writes a request's access line, in JSON when `json_line` is given, else in text."""

    def __init__(self, json_line: JsonAccessLine | None) -> None:
        self.json_line = json_line

    def write(
        self, scope: Scope, request_id: str, status: int, started: float, route: str | None
    ) -> None:
        """The line of a request begun at `started` (`time.perf_counter()`), answered with
        `status`; `route` is its template when already known."""
        if not _access.isEnabledFor(logging.INFO):
            return
        seconds = time.perf_counter() - started
        matched = scope.get("route")
        if matched is not None and HEALTH_ROUTES.get(matched.path) is matched:
            return  # probes and scrapes every few seconds would drown the log
        state = scope["state"]
        # A known key refused for its product or scopes (403) is named too, never the key.
        project_token = state.get("project_token") or state.get("denied_project_token")
        decision, remaining = state.get(DECISION_STATE, (None, None))
        org_id = project_id = key_id = None
        if project_token is not None:
            org_id, project_id = project_token.org_id, project_token.project_id
            key_id = project_token.key_id
        route_path = route if route is not None else route_template(scope, UNMATCHED)
        # A made-up method is the client's text: logged as the span records it.
        method = known_method(scope["method"])
        # Rounded to 0.01 ms: `round(x, 2)` takes a correctly rounded decimal path, ten
        # times the cost of rounding to a whole number.
        duration_ms = round(seconds * 100_000) / 100
        if self.json_line is not None:
            self.json_line.write(
                request_id,
                method,
                route_path,
                status,
                duration_ms,
                org_id,
                project_id,
                key_id,
                decision,
                remaining,
            )
            return
        fields = {
            "method": method,
            "route": route_path,
            "status": status,
            "duration_ms": duration_ms,
            "org_id": org_id,
            "project_id": project_id,
            "key_id": key_id,
            "ratelimit": decision,
            "ratelimit_remaining": remaining,
        }
        # The message shows the same fields, in this order, with `-` for those not known.
        shown = ["-" if value is None else value for value in fields.values()]
        fields["request_id"] = request_id  # also where no RequestIdFilter runs (pytest)
        _access.info(_ACCESS_MESSAGE, *shown, extra=fields)
