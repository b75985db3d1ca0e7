"""The runtime's lifespan, wrapped around the service's own, and its one-line start-up errors."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import Any

from fastapi import FastAPI
from starlette.types import Message, Send

from appkit_runtime.auth.http_authority import close_async_http_clients, close_http_authority
from appkit_runtime.auth.static_keys import load_static_keys
from appkit_runtime.db import dispose_engines
from appkit_runtime.errors import AppkitError
from appkit_runtime.fastapi.chained_routes import chain_routes, check_chained_routes
from appkit_runtime.fastapi.health import readiness_checks
from appkit_runtime.fastapi.route_order import check_route_order
from appkit_runtime.fastapi.tracing import flush_traces, start_traces
from appkit_runtime.frozen_heap import frozen_startup_heap
from appkit_runtime.ratelimit.org_cache import org_override_refresher
from appkit_runtime.redis_pools import close_redis_connections
from appkit_runtime.schema import schema_check
from appkit_runtime.settings import get_settings
from appkit_runtime.usage import usage_flusher

logger = logging.getLogger("appkit_runtime")

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[Any]]


def runtime_lifespan(user_lifespan: Lifespan | None) -> Lifespan:
    """The service's lifespan inside the runtime's: checks, usage flush, organisation-override
    refresh, frozen heap, clean-up."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        # Settings, and with them the static key table, before the first request: built
        # here once, not by the first requests in the threadpool.
        load_static_keys()
        try:
            check_route_order(app)
            chain_routes(app)
            check_chained_routes(app)
        except AppkitError as error:
            app.state.appkit_startup_error = f"appkit: {error}"
            raise
        app.state.appkit_schema = schema_check(app.state.appkit_databases, get_settings().env)
        await _log_unready(app)
        start_traces()
        try:
            own = user_lifespan(app) if user_lifespan is not None else nullcontext()
            async with usage_flusher(), org_override_refresher(), own as state:
                with frozen_startup_heap(get_settings().freezes_heap):
                    yield state
        finally:
            await close_redis_connections()
            await dispose_engines()
            await close_async_http_clients()
            close_http_authority()
            # Last: the usage flush above made spans of its own.
            await flush_traces()

    return lifespan


async def _log_unready(app: FastAPI) -> None:
    """Start even when a dependency is down (fail-open keeps serving); say so once."""
    checks = await readiness_checks(app.state.appkit_databases, app.state.appkit_schema)
    failing = {label: result for label, result in checks.items() if result != "ok"}
    if failing:
        logger.error("not ready at start-up, /readyz answers 503: %s", failing)


def short_startup_failure(send: Send, state_owner: FastAPI) -> Send:
    """`send` for the lifespan scope, reporting the runtime's own start-up refusals as their
    one line, not a traceback.

    Starlette sends the traceback as the `lifespan.startup.failed` message, which servers
    print; a refusal the runtime raised on purpose replaces it with its message.
    """

    async def send_short_failure(message: Message) -> None:
        line = getattr(state_owner.state, "appkit_startup_error", None)
        if message["type"] == "lifespan.startup.failed" and line:
            message = {**message, "message": line}
        await send(message)

    return send_short_failure
