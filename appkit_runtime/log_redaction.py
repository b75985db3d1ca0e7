"""Keeps secrets out of the logs of the HTTP client the runtime uses for the key authority.

httpx logs every request's URL at INFO, credentials included, and `APPKIT_AUTH_URL` may hold
them: the runtime turns httpx's and httpcore's loggers down to WARNING (unless the service set
their level itself) and strips the user information and query values from every URL httpx logs.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit, urlunsplit

import httpx

HTTP_CLIENT_LOGGERS = ("httpx", "httpcore")
REDACTED = "***"


def redact_url(url: str) -> str:
    """`url` with its user information replaced by `***@` and each query value by `***`.

    Authorities are often called with their secret in the query (`?code=...`), which is as
    much a part of `APPKIT_AUTH_URL` as a password; the names stay, to tell URLs apart.
    """
    parts = urlsplit(url)
    if "@" in parts.netloc:
        parts = parts._replace(netloc=f"{REDACTED}@{parts.netloc.rpartition('@')[2]}")
    if parts.query:
        names = [pair.partition("=")[0] for pair in parts.query.split("&")]
        parts = parts._replace(query="&".join(f"{name}={REDACTED}" for name in names))
    return urlunsplit(parts)


class RedactURLCredentials(logging.Filter):
    """Rewrites the httpx URLs in a record's arguments without their credentials."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, httpx.URL) for a in record.args):
            record.args = tuple(
                redact_url(str(a)) if isinstance(a, httpx.URL) else a for a in record.args
            )
        return True


_FILTER = RedactURLCredentials()


def quiet_http_client_logs() -> None:
    """WARNING for httpx and httpcore unless already configured, and no credentials ever."""
    for name in HTTP_CLIENT_LOGGERS:
        client_logger = logging.getLogger(name)
        if client_logger.level == logging.NOTSET:
            client_logger.setLevel(logging.WARNING)
    logging.getLogger("httpx").addFilter(_FILTER)
