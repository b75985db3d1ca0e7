"""Telling a Redis outage from an error answer, so the logs say which one happened.

An outage (refused, timed out, loading, cluster or master down) means the server cannot be used
at all; any other Redis error is the server refusing one command (a wrong type, a script error,
an out-of-range argument) while it is up, and is logged as that, apart from outages.
"""

from __future__ import annotations

from redis.exceptions import (
    BusyLoadingError,
    ClusterDownError,
    MasterDownError,
    RedisClusterException,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

OUTAGES = (
    RedisConnectionError,
    RedisTimeoutError,
    BusyLoadingError,
    ClusterDownError,
    MasterDownError,
    RedisClusterException,
    OSError,
)


def is_outage(error: BaseException) -> bool:
    """Whether `error` means Redis cannot be used at all, rather than one refused command."""
    return isinstance(error, OUTAGES)


def server_message(error: BaseException) -> str:
    """`<type>: <Redis's message>`, without the command and arguments redis-py puts before a
    pipeline's error (they may name keys)."""
    return f"{type(error).__name__}: {str(error).rpartition('caused error: ')[2]:.200}"
