"""`count_request()`: usage metrics for Django views, sync and async, over the shared core.

Stack it under `authenticate_key()` (which stores `request.project_token`). Django has no
lifespan, so the first counted request starts a thread that flushes every
`APPKIT_METRICS_FLUSH_SECONDS`; it flushes a final time at interpreter exit.
"""

from __future__ import annotations

import atexit
import functools
import inspect
import threading
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest

from appkit_runtime import usage
from appkit_runtime.django.errors import RUNTIME_CONDITIONS, runtime_error_response
from appkit_runtime.errors import RouteOrderError
from appkit_runtime.settings import get_settings
from appkit_runtime.tokens import ProjectToken

# Requests that matched no URL pattern share one label, so raw paths never become series.
UNMATCHED = "<unmatched>"

_thread: threading.Thread | None = None
_stop = threading.Event()
_thread_lock = threading.Lock()


def count_request(
    kind: str | None = None, product: str | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Count each call of the decorated view as a job of the authenticated project.

    `product` defaults to the token's product; both default to `"default"`.
    """

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(view):

            @functools.wraps(view)
            async def async_view(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
                try:
                    _count(request, kind, product)
                except RUNTIME_CONDITIONS as error:
                    return runtime_error_response(error)
                return await view(request, *args, **kwargs)

            return async_view

        @functools.wraps(view)
        def sync_view(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            try:
                _count(request, kind, product)
            except RUNTIME_CONDITIONS as error:
                return runtime_error_response(error)
            return view(request, *args, **kwargs)

        return sync_view

    return decorator


def _count(request: HttpRequest, kind: str | None, product: str | None) -> None:
    token: ProjectToken | None = getattr(request, "project_token", None)
    route = getattr(getattr(request, "resolver_match", None), "route", None)
    if token is None:
        raise RouteOrderError(
            f"{request.method} {request.path}: count_request() found no project token; "
            "put @authenticate_key() above it"
        )
    route = f"/{route.lstrip('/')}" if route else UNMATCHED
    usage.count_job(token, product, kind, route, request.method or "GET")
    if _thread is None:
        start_usage_flush_thread()


def start_usage_flush_thread() -> None:
    """Start this process's flush thread unless it runs; `count_request` calls it itself."""
    global _thread
    with _thread_lock:
        if _thread is not None and _thread.is_alive():
            return
        _stop.clear()
        _thread = threading.Thread(target=_flush_forever, name="appkit-usage-flush", daemon=True)
        _thread.start()


def stop_usage_flush_thread() -> bool:
    """Stop the flush thread and flush a final time; False when that flush failed."""
    global _thread
    with _thread_lock:
        thread, _thread = _thread, None
        _stop.set()
    if thread is not None:
        thread.join()
    return usage.flush_usage_sync()


def _flush_forever() -> None:
    while not _stop.wait(get_settings().metrics_flush_seconds):
        usage.flush_usage_sync()


atexit.register(stop_usage_flush_thread)
