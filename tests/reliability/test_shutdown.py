"""SIGTERM in the middle of load: every request answered 200 is in the usage counted in Redis."""

from __future__ import annotations

import asyncio
import signal

import redis.asyncio as async_redis

from appkit_runtime.settings import get_settings
from appkit_runtime.usage import get_project_usage
from tests.reliability.conftest import ServiceFactory
from tests.reliability.load import Load
from tests.reliability.material import new_key, static_keys


async def test_sigterm_under_load_loses_no_usage(
    start_service: ServiceFactory, shared_redis: str
) -> None:
    key = new_key()
    service = start_service(
        APPKIT_API_KEYS=static_keys((key, "org", "shutdown", "1000000/600")),
        APPKIT_METRICS_FLUSH_SECONDS="0.2",
    )
    assert service.process is not None
    paths = [(f"/items/{n}", key) for n in range(5)]
    async with Load(service.port, paths, workers=30) as load:
        await load.until(600)
        service.process.terminate()  # SIGTERM, while 30 clients keep sending
        status = await asyncio.to_thread(service.process.wait, 30)

    answered = [reply.status for _, _, reply in load.replies if reply is not None]
    # uvicorn re-raises the signal once its graceful shutdown is done.
    assert status == -signal.SIGTERM
    assert "Application shutdown complete." in service.log()
    assert set(answered) == {200}
    client = async_redis.Redis.from_url(shared_redis)
    try:
        usage = await get_project_usage(client, "org", "shutdown")
    finally:
        await client.aclose()
    assert usage == {"default": {"default": len(answered)}}
    assert get_settings().redis_prefix  # the service wrote under this test's prefix
