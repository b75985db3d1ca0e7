"""Redis keys of one test: every test runs under its own `APPKIT_REDIS_PREFIX`.

Keys under that prefix, the runtime's and the test's own (`redis_key("seen")`), are deleted
after the test; a shared Redis is never flushed.
"""

from __future__ import annotations

import logging

from appkit_runtime.settings import get_settings

logger = logging.getLogger("appkit_runtime.testing")


def redis_key(*parts: str) -> str:
    """`<the test's prefix>:<parts…>`: a key the plugin deletes after the test."""
    return ":".join((get_settings().redis_prefix, *parts))


def delete_prefixed_keys(prefix: str) -> None:
    """Delete what the test wrote under `prefix`, on each Redis the runtime uses."""
    from appkit_runtime.fastapi.health import RUNTIME_REDIS_NAMES
    from appkit_runtime.redis_pools import close_sync_redis_connections, sync_client

    try:
        settings = get_settings()
    except ValueError:
        return
    seen: set[str] = set()
    for name in RUNTIME_REDIS_NAMES:
        url, _ = settings.redis_url_for(name)
        if url in seen:
            continue
        seen.add(url)
        try:
            client = sync_client(name)
            doomed = list(client.scan_iter(match=f"{prefix}:*", count=1000))
            if doomed:
                client.delete(*doomed)
        except Exception as error:  # the test may have pointed Redis at a closed port
            logger.debug("could not clean %s keys: %s", name, type(error).__name__)
    close_sync_redis_connections()
