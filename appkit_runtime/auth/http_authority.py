"""The `http` authority: asks an external auth service at `APPKIT_AUTH_URL` over HTTP.

Contract (also in the documentation's HTTP answers): `POST <APPKIT_AUTH_URL>` with JSON
`{"key", "product", "kind", "method", "port", "headers"}`; 200 with a token object → valid;
401, 403 or 404 → invalid; anything else, a time-out or a refused connection →
`AuthorityUnavailable`; a 200 that is not a well-formed token
(`appkit_runtime.auth.token_validation`) → `MalformedToken`, one of those.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

import httpx

from appkit_runtime.auth.token_validation import checked_ttl, token_from_json
from appkit_runtime.errors import AuthorityUnavailable, ConfigurationError
from appkit_runtime.log_redaction import quiet_http_client_logs
from appkit_runtime.request_context import REQUEST_ID_HEADER, current_request_id
from appkit_runtime.settings import Settings, get_settings
from appkit_runtime.tokens import ProjectToken

INVALID_STATUSES = frozenset({401, 403, 404})
# Credentials are never forwarded; the key travels once, in the body.
_PRIVATE_HEADERS = frozenset({"authorization", "x-api-key", "cookie", "proxy-authorization"})

_current: tuple[Settings, HttpAuthority] | None = None
_lock = threading.Lock()


class HttpAuthority:
    """One pooled, thread-safe synchronous client per URL and timeout."""

    def __init__(self, url: str, *, timeout: float, cache_ttl: float, negative_ttl: float) -> None:
        self.url = url
        self.cache_ttl = cache_ttl
        self.negative_ttl = negative_ttl
        quiet_http_client_logs()
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
            follow_redirects=False,
        )

    def get_project_token(
        self,
        current_product: str | None,
        headers: Mapping[str, str],
        key_token: str,
        kind: str | None,
        request_method: str,
        port: int | None,
    ) -> tuple[ProjectToken | None, float]:
        """Ask the service; see the module docstring for the contract."""
        payload = {
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
        request_id = current_request_id()
        # The authority's logs then name the same request as the service's.
        extra_headers = {REQUEST_ID_HEADER: request_id} if request_id else None
        try:
            response = self._client.post(self.url, json=payload, headers=extra_headers)
        except httpx.HTTPError as error:
            # The class name only: httpx messages may carry the URL and its credentials.
            raise AuthorityUnavailable(
                f"key authority unreachable ({type(error).__name__})"
            ) from None
        if response.status_code in INVALID_STATUSES:
            return None, self.negative_ttl
        if response.status_code != 200:
            raise AuthorityUnavailable(f"key authority answered HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            raise AuthorityUnavailable("key authority answered 200 without JSON") from None
        token = token_from_json(body)
        return token, checked_ttl(body.get("ttl", self.cache_ttl))

    def close(self) -> None:
        """Close the pooled connections."""
        self._client.close()


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
    """Close the client (shutdown, tests); the next call makes a new one."""
    global _current
    with _lock:
        if _current is not None:
            _current[1].close()
        _current = None
