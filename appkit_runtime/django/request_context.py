"""`RequestIdMiddleware`: the FastAPI side's request ids for Django, sync and async.

Put `"appkit_runtime.django.request_context.RequestIdMiddleware"` first in `MIDDLEWARE`. Each
request gets an id (the caller's `X-Request-ID` when it is 1-128 characters of
`[A-Za-z0-9._:-]`, else a new one), echoed in the response's `X-Request-ID`. It is held in
the same context variable as on the FastAPI side, so the `http` key authority's call carries
it, and the runtime's filter and formatter put it on log records through Django's `LOGGING`:

    "filters": {"request_id": {"()": "appkit_runtime.log_config.RequestIdFilter"}},
    "formatters": {"json": {"()": "appkit_runtime.log_config.log_formatter", "style": "json"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["request_id"],
                             "formatter": "json"}},
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase

from appkit_runtime.request_context import REQUEST_ID, REQUEST_ID_HEADER, request_id_for

GetResponse = Callable[[HttpRequest], Any]


class RequestIdMiddleware:
    """Give each request an id (the caller's if acceptable) for its logs, and echo it."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response
        # Async under an async stack (ASGI), so Django adds no thread hop around it.
        self.asynchronous = iscoroutinefunction(get_response)
        if self.asynchronous:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        if self.asynchronous:
            return self._acall(request)
        request_id = request_id_for(request.headers.get(REQUEST_ID_HEADER))
        token = REQUEST_ID.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            REQUEST_ID.reset(token)
        response[REQUEST_ID_HEADER] = request_id
        return response

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        request_id = request_id_for(request.headers.get(REQUEST_ID_HEADER))
        token = REQUEST_ID.set(request_id)
        try:
            response = await self.get_response(request)
        finally:
            REQUEST_ID.reset(token)
        response[REQUEST_ID_HEADER] = request_id
        return response
