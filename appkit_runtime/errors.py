"""The runtime's exceptions: one root, mixed with the builtin each one behaves like."""

from __future__ import annotations


class AppkitError(Exception):
    """Root of every error the runtime raises on purpose."""


class ConfigurationError(ValueError, AppkitError):
    """A setting is missing or malformed; the message names the variable."""


class StorageError(ConnectionError, AppkitError):
    """Redis could not be reached or answered with an error."""


class StorageCommandError(StorageError):
    """Redis is up but refused a command (a wrong type, a script error, out of memory)."""


class DatabaseUnavailable(ConnectionError, AppkitError):
    """The database could not be reached (refused, timed out, or its host unknown)."""


class AuthorityUnavailable(ConnectionError, AppkitError):
    """The key authority could not be asked (down, timed out, or answered garbage)."""


class RouteOrderError(AppkitError):
    """A route runs the rate limiter or metrics without authentication before them."""


class AuthorityBusy(AuthorityUnavailable):
    """`APPKIT_AUTH_MAX_CONCURRENT` authority calls are in flight; this one was not made."""
