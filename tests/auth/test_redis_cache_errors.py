"""The Redis auth cache tells an outage from an error answer, each on its own log throttle."""

from __future__ import annotations

import logging

from appkit_runtime.auth import key_digest, redis_cache
from appkit_runtime.redis_pools import close_sync_redis_connections
from appkit_runtime.settings import get_redis_instance, get_settings
from tests.conftest import free_port


def test_an_error_answer_is_logged_as_such_and_leaves_the_outage_warning(
    monkeypatch, caplog
) -> None:
    caplog.set_level(logging.WARNING, logger="appkit_runtime.auth")
    digest = key_digest("live-key-wrongtype")
    name = redis_cache.redis_key(digest)
    client = get_redis_instance("authentication_cache")
    client.hset(name, "not", "a token")  # GET on a hash: WRONGTYPE, while Redis is up
    try:
        assert redis_cache.fetch_sync(digest) is None
        assert redis_cache.fetch_sync(digest) is None
    finally:
        client.delete(name)
        close_sync_redis_connections()

    monkeypatch.setenv("APPKIT_REDIS_URL_AUTHENTICATION_CACHE", f"redis://127.0.0.1:{free_port()}")
    get_settings.cache_clear()
    assert redis_cache.fetch_sync(digest) is None

    lines = [r.getMessage() for r in caplog.records if r.name == "appkit_runtime.auth"]
    assert len(lines) == 2, lines
    assert lines[0].startswith("Redis 'authentication_cache' answered an error")
    assert "ResponseError: WRONGTYPE" in lines[0] and ":auth:" not in lines[0]
    assert lines[1].startswith("Redis 'authentication_cache' unreachable (ConnectionError)")
