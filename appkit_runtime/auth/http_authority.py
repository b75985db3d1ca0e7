"""The `http` authority: asks an external auth service at `APPKIT_AUTH_URL` over HTTP.

Contract (also in the documentation's HTTP answers): `POST <APPKIT_AUTH_URL>` with JSON
`{"key", "product", "kind", "method", "port", "headers"}`; 200 with a token object → valid;
401, 403 or 404 → invalid; anything else, a time-out or a refused connection →
`AuthorityUnavailable`; a 200 that is not a well-formed token
(`appkit_runtime.auth.token_validation`) → `MalformedToken`, one of those.

FastAPI asks on the event loop (`get_project_token_async`, one aiohttp session per loop);
Django and custom code in threads ask with httpx's blocking client (`get_project_token`).
A call in a thread holds the GIL while httpx builds and parses, and the event loop then
waits up to the interpreter's switch interval (5 ms) for it each time: under a flood of
unknown keys every cached key paid that. On the loop, aiohttp costs about a quarter of the
CPU of httpx's async client per call (BENCHMARKS.md, issue 22), and that CPU is the loop's.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit
from urllib.request import getproxies_environment, proxy_bypass_environment

import aiohttp
import httpx

from appkit_runtime.auth.token_validation import checked_ttl, token_from_json
from appkit_runtime.errors import AuthorityUnavailable, ConfigurationError
from appkit_runtime.log_redaction import quiet_http_client_logs
from appkit_runtime.loop_cache import LoopCache
from appkit_runtime.request_context import REQUEST_ID_HEADER, current_request_id
from appkit_runtime.settings import Settings, get_settings
from appkit_runtime.tokens import ProjectToken

INVALID_STATUSES = frozenset({401, 403, 404})
# Credentials are never forwarded; the key travels once, in the body.
_PRIVATE_HEADERS = frozenset({"authorization", "x-api-key", "cookie", "proxy-authorization"})
MAX_ANSWER_BYTES = 64 * 1024
_LIMITS = httpx.Limits(max_connections=64, max_keepalive_connections=16)

_current: tuple[Settings, HttpAuthority] | None = None
_lock = threading.Lock()
_sessions: LoopCache[aiohttp.ClientSession] = LoopCache()


class HttpAuthority:
    """Pooled clients per URL and timeout: one synchronous, one asynchronous per loop."""

    def __init__(self, url: str, *, timeout: float, cache_ttl: float, negative_ttl: float) -> None:
        self.url = url
        self.timeout = timeout
        self.proxy = environment_proxy(url)
        self.cache_ttl = cache_ttl
        self.negative_ttl = negative_ttl
        quiet_http_client_logs()
        # Made on first use: FastAPI never needs it, and httpx refuses some environments
        # (a SOCKS proxy without its extra) that the event loop's session does not.
        self._client: httpx.Client | None = None
        self._client_lock = threading.Lock()

    def get_project_token(
        self,
        current_product: str | None,
        headers: Mapping[str, str],
        key_token: str,
        kind: str | None,
        request_method: str,
        port: int | None,
    ) -> tuple[ProjectToken | None, float]:
        """Ask the service, blocking; see the module docstring for the contract."""
        payload = _payload(current_product, headers, key_token, kind, request_method, port)
        try:
            response = self._blocking_client().post(
                self.url, json=payload, headers=_request_id_header()
            )
        except httpx.HTTPError as error:
            raise _unreachable(error) from None
        return self._answer(response.status_code, response.json)

    async def get_project_token_async(
        self,
        current_product: str | None,
        headers: Mapping[str, str],
        key_token: str,
        kind: str | None,
        request_method: str,
        port: int | None,
    ) -> tuple[ProjectToken | None, float]:
        """`get_project_token` on the running event loop."""
        payload = _payload(current_product, headers, key_token, kind, request_method, port)
        session = _sessions.get(self, self._session)
        try:
            async with session.post(
                self.url,
                json=payload,
                headers=_request_id_header(),
                allow_redirects=False,
                proxy=self.proxy,
            ) as response:
                status = response.status
                # A token is a few hundred bytes: a larger answer is not one, and reading it
                # whole would let a broken authority fill the memory of every worker.
                body = await _read_at_most(response, MAX_ANSWER_BYTES)
        except (aiohttp.ClientError, TimeoutError) as error:
            raise _unreachable(error) from None
        return self._answer(status, lambda: json.loads(body))

    def _session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            connector=aiohttp.TCPConnector(limit=_LIMITS.max_connections),
        )

    def _answer(
        self, status: int, read_json: Callable[[], Any]
    ) -> tuple[ProjectToken | None, float]:
        if status in INVALID_STATUSES:
            return None, self.negative_ttl
        if status != 200:
            raise AuthorityUnavailable(f"key authority answered HTTP {status}")
        try:
            body = read_json()
        except ValueError:
            raise AuthorityUnavailable("key authority answered 200 without JSON") from None
        token = token_from_json(body)
        return token, checked_ttl(body.get("ttl", self.cache_ttl))

    def _blocking_client(self) -> httpx.Client:
        with self._client_lock:
            if self._client is None:
                try:
                    self._client = httpx.Client(
                        timeout=httpx.Timeout(self.timeout), limits=_LIMITS, follow_redirects=False
                    )
                except ImportError as error:  # a proxy scheme whose httpx extra is missing
                    raise AuthorityUnavailable(f"key authority unreachable ({error})") from None
            return self._client

    def close(self) -> None:
        """Close the synchronous client's pooled connections, if it was made."""
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None


def environment_proxy(url: str) -> str | None:
    """The proxy `HTTP(S)_PROXY`, `ALL_PROXY` and `NO_PROXY` give for `url`, as httpx reads
    them; read once, since aiohttp's `trust_env` reads them (and `~/.netrc`) in a thread on
    every request."""
    parts = urlsplit(url)
    if parts.hostname is None or proxy_bypass_environment(parts.hostname):
        return None
    proxies = getproxies_environment()
    return proxies.get(parts.scheme) or proxies.get("all")


async def _read_at_most(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body, or `AuthorityUnavailable` as soon as it is longer than `limit` bytes."""
    body = bytearray()
    async for chunk in response.content.iter_any():
        body += chunk
        if len(body) > limit:
            raise AuthorityUnavailable(f"key authority answered over {limit} bytes")
    return bytes(body)


def _payload(
    current_product: str | None,
    headers: Mapping[str, str],
    key_token: str,
    kind: str | None,
    request_method: str,
    port: int | None,
) -> dict[str, Any]:
    return {
        "key": key_token,
        "product": current_product,
        "kind": kind,
        "method": request_method,
        "port": port,
        "headers": {
            name.lower(): value
            for name, value in headers.items()
            if name.lower() not in _PRIVATE_HEADERS
        },
    }


def _request_id_header() -> dict[str, str] | None:
    # The authority's logs then name the same request as the service's.
    request_id = current_request_id()
    return {REQUEST_ID_HEADER: request_id} if request_id else None


def _unreachable(error: Exception) -> AuthorityUnavailable:
    # The class name only: httpx messages may carry the URL and its credentials.
    return AuthorityUnavailable(f"key authority unreachable ({type(error).__name__})")


def http_authority() -> HttpAuthority:
    """The authority for the current settings, made once per settings object."""
    global _current
    settings = get_settings()
    current = _current
    if current is not None and current[0] is settings:
        return current[1]
    if not settings.auth_url:
        raise ConfigurationError("APPKIT_AUTH_URL: required when APPKIT_AUTH_BACKEND=http")
    with _lock:
        if _current is None or _current[0] is not settings:
            if _current is not None:
                _current[1].close()
            authority = HttpAuthority(
                settings.auth_url,
                timeout=settings.auth_timeout,
                cache_ttl=settings.auth_cache_ttl,
                negative_ttl=settings.auth_negative_ttl,
            )
            _current = (settings, authority)
        return _current[1]


def close_http_authority() -> None:
    """Close the synchronous client (shutdown, tests); the next call makes a new one."""
    global _current
    with _lock:
        if _current is not None:
            _current[1].close()
        _current = None


async def close_async_http_clients() -> None:
    """Close the running loop's sessions (the lifespan's end)."""
    sessions = _sessions.pop_current().values()
    await asyncio.gather(*(session.close() for session in sessions), return_exceptions=True)
