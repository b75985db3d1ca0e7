"""`authenticate_key()`: the Django view decorator over the same core as `AuthenticateKey`.

Sync views resolve misses in the request's thread (sync Redis, direct authority call); async
views run that same call in a worker thread. Either way a cached key costs no I/O, and with
the built-in static authority neither does a miss: its table answers, in the calling thread.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, JsonResponse

from appkit_runtime.auth.authorities import get_project_token
from appkit_runtime.auth.cache import LOCAL
from appkit_runtime.auth.credentials import extract_key, key_digest, well_formed
from appkit_runtime.auth.decisions import (
    AUTHORITY_UNAVAILABLE,
    INVALID_KEY,
    MISSING_KEY,
    Denial,
    authorize,
)
from appkit_runtime.auth.resolve import resolve_sync, static_answer, static_backend
from appkit_runtime.django.errors import RUNTIME_CONDITIONS, runtime_error_response
from appkit_runtime.errors import AuthorityUnavailable
from appkit_runtime.tokens import ProjectToken

View = Callable[..., Any]


def error_response(denial: Denial) -> JsonResponse:
    """`{"detail": ...}` with the denial's status and headers."""
    response = JsonResponse({"detail": denial.detail}, status=denial.status)
    for name, value in denial.headers.items():
        response[name] = value
    return response


def _key_of(request: HttpRequest) -> str | Denial:
    key_token = extract_key(request.headers.get("Authorization"), request.headers.get("X-API-Key"))
    if key_token is None:
        return MISSING_KEY
    return key_token if well_formed(key_token) else INVALID_KEY


def _port(request: HttpRequest) -> int | None:
    port = request.get_port()
    return int(port) if port and port.isdigit() else None


def _lookup(
    request: HttpRequest, key_token: str, digest: bytes, product: str | None, kind: str | None
) -> ProjectToken | Denial | None:
    """The miss path: Redis, then the configured authority, one lookup per key at a time."""
    try:
        return resolve_sync(
            digest,
            lambda: get_project_token(
                product, request.headers, key_token, kind, request.method or "GET", _port(request)
            ),
        )
    except AuthorityUnavailable:
        return AUTHORITY_UNAVAILABLE


def _decide(
    found: ProjectToken | Denial | None, product: str | None, scopes: frozenset[str]
) -> ProjectToken | Denial:
    if found is None:
        return INVALID_KEY
    if isinstance(found, Denial):
        return found
    return authorize(found, product, scopes) or found


def _authenticate(
    request: HttpRequest, product: str | None, kind: str | None, scopes: frozenset[str]
) -> ProjectToken | Denial:
    """The sync path: a cached key costs a dict lookup; a miss resolves in this thread."""
    key_token = _key_of(request)
    if isinstance(key_token, Denial):
        return key_token
    digest = key_digest(key_token)
    entry = LOCAL.get(digest)
    if entry is not None:
        found: ProjectToken | Denial | None = entry[0]
    elif static_backend():
        found = static_answer(digest)
    else:
        found = _lookup(request, key_token, digest, product, kind)
    return _decide(found, product, scopes)


async def _authenticate_async(
    request: HttpRequest, product: str | None, kind: str | None, scopes: frozenset[str]
) -> ProjectToken | Denial:
    """The async path: a cached key costs no thread hop; a miss resolves in a worker thread."""
    key_token = _key_of(request)
    if isinstance(key_token, Denial):
        return key_token
    digest = key_digest(key_token)
    entry = LOCAL.get(digest)
    if entry is not None:
        found: ProjectToken | Denial | None = entry[0]
    elif static_backend():
        found = static_answer(digest)
    else:
        lookup = sync_to_async(_lookup, thread_sensitive=False)
        found = await lookup(request, key_token, digest, product, kind)
    return _decide(found, product, scopes)


def authenticate_key(
    product: str | None = None, scopes: Iterable[str] = (), *, kind: str | None = None
) -> Callable[[View], View]:
    """Let the view run only for a key that opens it; sets `request.project_token`.

    Answers 401 (with `WWW-Authenticate: Bearer`), 403 or 503 (with `Retry-After`) as JSON,
    and the runtime's own errors (bad settings) as JSON too, never Django's HTML 500.
    """
    required = frozenset(scopes)

    def decorator(view: View) -> View:
        if inspect.iscoroutinefunction(view):

            @functools.wraps(view)
            async def async_wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
                try:
                    outcome = await _authenticate_async(request, product, kind, required)
                except RUNTIME_CONDITIONS as error:
                    return runtime_error_response(error)
                if isinstance(outcome, Denial):
                    return error_response(outcome)
                request.project_token = outcome  # type: ignore[attr-defined]
                return await view(request, *args, **kwargs)

            return async_wrapper

        @functools.wraps(view)
        def sync_wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                outcome = _authenticate(request, product, kind, required)
            except RUNTIME_CONDITIONS as error:
                return runtime_error_response(error)
            if isinstance(outcome, Denial):
                return error_response(outcome)
            request.project_token = outcome  # type: ignore[attr-defined]
            return view(request, *args, **kwargs)  # type: ignore[no-any-return]

        return sync_wrapper

    return decorator


# The module map's one import path for every Django decorator.
from appkit_runtime.django.metrics import count_request  # noqa: E402
from appkit_runtime.django.ratelimit import rate_limit  # noqa: E402

__all__ = ["authenticate_key", "count_request", "error_response", "rate_limit"]
