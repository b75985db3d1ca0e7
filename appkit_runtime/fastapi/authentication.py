"""`AuthenticateKey`: the FastAPI dependency that turns an API key into a `ProjectToken`.

A repeated good key is served from the in-process cache: a hash, a dict lookup and an expiry
check, with no Redis call and no thread hop. Misses go through `appkit_runtime.auth.resolve`;
with the built-in static authority they are answered from its table, and the built-in `http`
authority is asked with its async client, both on the event loop; a `get_project_token` of
your own runs in a thread.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from functools import partial

from anyio import CapacityLimiter, to_thread
from fastapi import HTTPException, Request, Response
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase

from appkit_runtime.auth.authorities import get_authority
from appkit_runtime.auth.cache import LOCAL
from appkit_runtime.auth.credentials import (
    MAX_KEY_LENGTH,
    PRESENTED_KEY,
    key_digest,
    presented_key,
    well_formed,
)
from appkit_runtime.auth.decisions import (
    AUTHORITY_UNAVAILABLE,
    INVALID_KEY,
    MISSING_KEY,
    Denial,
    authorize,
)
from appkit_runtime.auth.resolve import resolve_async, static_answer, static_backend
from appkit_runtime.errors import AuthorityUnavailable
from appkit_runtime.loop_cache import LoopCache
from appkit_runtime.tokens import ProjectToken
from appkit_runtime.tracing import span

SCHEME_NAME = "APIKey"
# Authority calls get threads of their own: a hanging authority must not take every thread
# of the shared pool (40) that sync endpoints and `run_in_threadpool` callers need.
AUTHORITY_THREADS = 32
_authority_limiters: LoopCache[CapacityLimiter] = LoopCache()
AsyncAsk = Callable[..., Awaitable[tuple[ProjectToken | None, float]]]
_DESCRIPTION = "An API key, as `Authorization: Bearer <key>` or in the `X-API-Key` header."


class AuthDenied(HTTPException):
    """The `HTTPException` of a denial: 401 with `WWW-Authenticate`, 403, or 503.

    Apps made by `get_fastapi_app` answer it with `denied_response`; any other app, as the
    `HTTPException` it is, with the same status, headers and `{"detail": ...}` body.
    """

    def __init__(self, denial: Denial) -> None:
        super().__init__(denial.status, denial.detail, dict(denial.headers) or None)


def auth_error(denial: Denial) -> HTTPException:
    """The `HTTPException` for a denial: 401 with `WWW-Authenticate`, 403, or 503."""
    return AuthDenied(denial)


# Bodies by detail: a flood of unknown keys gets the same few answers, encoded once each.
# Bounded, in case a subclass builds denials with details of its own.
_bodies: dict[str, bytes] = {}
_MAX_BODIES = 64


async def denied_response(request: Request, exc: Exception) -> Response:
    """FastAPI's answer to an `HTTPException`, byte for byte (`{"detail":...}`, the status
    and headers), with the body encoded once per detail instead of once per request."""
    if not isinstance(exc, HTTPException):
        raise exc
    body = _bodies.get(exc.detail)
    if body is None:
        body = json.dumps(
            {"detail": exc.detail}, ensure_ascii=False, allow_nan=False, separators=(",", ":")
        ).encode()
        if len(_bodies) < _MAX_BODIES:
            _bodies[exc.detail] = body
    return Response(body, exc.status_code, exc.headers, media_type="application/json")


def _server_port(request: Request) -> int:
    """The port the server listens on, else the scheme's default."""
    server = request.scope.get("server")
    if server and server[1]:
        return int(server[1])
    return 443 if request.url.scheme in ("https", "wss") else 80


class FastAPIAuthenticateBase(SecurityBase):
    """Authenticates a request; subclass and override `get_project_token` to plug in an
    authority of your own (the default is the one `APPKIT_AUTH_BACKEND` names)."""

    appkit_chain_role = "auth"

    def __init__(
        self,
        product: str | None = None,
        *,
        scopes: Iterable[str] = (),
        kind: str | None = None,
        scheme_name: str = SCHEME_NAME,
    ) -> None:
        self.product = product
        self.scopes = frozenset(scopes)
        self.kind = kind
        self.model = HTTPBearerModel(description=_DESCRIPTION)
        self.scheme_name = scheme_name

    async def __call__(self, request: Request) -> ProjectToken:
        """The request's token, also stored on `request.state.project_token`."""
        project_token = await self.authenticate(request)
        # The state's dict itself (the one `request.state` wraps): no `State` object made.
        request.scope.setdefault("state", {})["project_token"] = project_token
        return project_token

    async def authenticate(self, request: Request) -> ProjectToken:
        """Read the key, resolve it (cache, Redis, authority) and check product and scopes."""
        presented = request.scope.get(PRESENTED_KEY)  # read and hashed by `UnknownKeyGate`
        if presented is not None:
            key_token, digest = presented
        else:
            key_token = presented_key(request.scope["headers"])
            if key_token is None:
                raise auth_error(MISSING_KEY)
            if not 0 < len(key_token) <= MAX_KEY_LENGTH:
                raise auth_error(INVALID_KEY)  # before hashing it, however long it is
            digest = key_digest(key_token)
        # Only keys found well formed are ever resolved, so only they are ever cached: a hit
        # needs no shape check (the pattern match is left for misses).
        entry = LOCAL.get(digest)
        if entry is not None:
            project_token = entry[0]
        elif not well_formed(key_token):
            raise auth_error(INVALID_KEY)
        elif self._asks_static_table():
            project_token = static_answer(digest)
        else:
            current_product, kind, request_method = self.product, self.kind, request.method
            port = _server_port(request)

            ask_on_loop = self._asks_on_loop()

            async def ask() -> tuple[ProjectToken | None, float]:
                args = (current_product, request.headers, key_token, kind, request_method, port)
                with span("appkit.auth.authority"):
                    if ask_on_loop is not None:
                        return await ask_on_loop(*args)
                    limiter = _authority_limiters.get(
                        "authority", lambda: CapacityLimiter(AUTHORITY_THREADS)
                    )
                    return await to_thread.run_sync(
                        partial(self.get_project_token, *args), limiter=limiter
                    )

            try:
                project_token = await resolve_async(digest, ask)
            except AuthorityUnavailable:
                raise auth_error(AUTHORITY_UNAVAILABLE) from None
        if project_token is None:
            raise auth_error(INVALID_KEY)
        denial = authorize(project_token, self.product, self.scopes)
        if denial is not None:
            # For the access line and span only: a separate name, since later dependencies
            # trust `project_token` as authorized.
            request.state.denied_project_token = project_token
            raise auth_error(denial)
        return project_token

    def _asks_on_loop(self) -> AsyncAsk | None:
        """The configured authority's asynchronous call (the `http` backend's), when
        `get_project_token` is not replaced; None: ask `get_project_token` in a thread."""
        if not self._builtin_lookup():
            return None
        return getattr(get_authority(), "get_project_token_async", None)

    def _builtin_lookup(self) -> bool:
        method = self.get_project_token
        return getattr(method, "__func__", None) is FastAPIAuthenticateBase.get_project_token

    def _asks_static_table(self) -> bool:
        """Whether a miss goes to the built-in static table: `get_project_token` is not
        replaced (by a subclass or on the instance) and `APPKIT_AUTH_BACKEND` is `static`."""
        return self._builtin_lookup() and static_backend()

    def get_project_token(
        self,
        current_product: str | None,
        headers: Mapping[str, str],
        key_token: str,
        kind: str | None,
        request_method: str,
        port: int | None,
    ) -> tuple[ProjectToken | None, float]:
        """Ask the key authority (blocking; `authenticate` runs it in the threadpool)."""
        return get_authority().get_project_token(
            current_product, headers, key_token, kind, request_method, port
        )


class AuthenticateKey(FastAPIAuthenticateBase):
    """`Depends(AuthenticateKey(product=None, scopes=()))`: 401, 403 or 503 unless the key
    opens this endpoint; the first link of the protected chain."""
