"""The rate limiter's decision on a request, left on the request's state for logs and traces.

The limiter writes one tuple where the request's state already lives; the access line and the
server span read it when the response is done, so the hot path pays one dict store.
"""

from __future__ import annotations

from typing import Literal

# The request-state key (Starlette's `request.state`, i.e. `scope["state"]`).
DECISION_STATE = "appkit_ratelimit"

# `fail_closed` (Redis down, 503) is the fifth outcome, beside the four the access line names.
Decision = Literal["allowed", "limited", "would_limit", "fail_open", "fail_closed"]
