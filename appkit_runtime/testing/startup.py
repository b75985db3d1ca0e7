"""Checks run once at session start; each failure stops the run with one line.

A wrong `appkit_app`, a bad `APPKIT_*` setting, or a Redis or PostgreSQL that does not answer
would otherwise fail every test with its own traceback.
"""

from __future__ import annotations

import importlib
from typing import Any
from urllib.parse import urlsplit

import pytest

from appkit_runtime.errors import ConfigurationError


def import_app(target: str) -> Any:
    """The object `module:attribute` names (attribute defaults to `app`)."""
    module_name, _, attribute = target.partition(":")
    where = f"appkit: appkit_app = {target!r}"
    try:
        module = importlib.import_module(module_name)
    except ConfigurationError as error:
        raise pytest.UsageError(f"appkit: {error}") from None
    except SystemExit as error:  # the runtime's own start-up refusals exit with their line
        raise pytest.UsageError(str(error.code)) from None
    except Exception as error:
        raise pytest.UsageError(f"{where}: {type(error).__name__}: {error}") from None
    try:
        return getattr(module, attribute or "app")
    except AttributeError:
        raise pytest.UsageError(
            f"{where}: module {module_name!r} has no attribute {attribute or 'app'!r}"
        ) from None


def check_settings() -> Any:
    """The service's settings, read now so that a bad value is one line."""
    from appkit_runtime.settings import get_settings

    get_settings.cache_clear()
    try:
        return get_settings()
    except ConfigurationError as error:
        raise pytest.UsageError(f"appkit: {error}") from None


def check_redis() -> None:
    """Every Redis the runtime uses answers PING (the embedded `memory://` always does)."""
    from appkit_runtime.fastapi.health import RUNTIME_REDIS_NAMES
    from appkit_runtime.redis_pools import close_sync_redis_connections, sync_client
    from appkit_runtime.settings import get_settings

    settings = get_settings()
    checked: set[str] = set()
    try:
        for name in RUNTIME_REDIS_NAMES:
            url, variable = settings.redis_url_for(name)
            if url in checked or url.startswith("memory://"):
                continue
            checked.add(url)
            try:
                sync_client(name).ping()
            except Exception as error:
                parts = urlsplit(url)
                raise pytest.UsageError(
                    f"appkit: Redis at {parts.hostname}:{parts.port or 6379} ({variable}) "
                    f"does not answer: {type(error).__name__}"
                ) from None
    finally:
        close_sync_redis_connections()
