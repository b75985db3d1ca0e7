"""Analysis variants `evalsha*`: plain FastAPI with one dependency that runs one Lua script
through redis-py, i.e. the cost of one round trip with nothing of appkit's around it.

`BENCH_EVALSHA` picks what differs from the plain case: `blocking` takes the connection
from a `BlockingConnectionPool` configured as appkit's pools are; `appkit-script` runs
appkit's own limiter script (four commands inside Redis instead of one).
"""

from __future__ import annotations

import os

import redis.asyncio as async_redis
from fastapi import Depends, FastAPI

from appkit_runtime.ratelimit import PROJECT_RATE_LIMITER_LUA
from bench.apps.common import MAX_REQUESTS, PATH, WINDOW_SECONDS, read_item, redis_url

KIND = os.environ.get("BENCH_EVALSHA", "plain")
if KIND == "blocking":
    pool = async_redis.BlockingConnectionPool.from_url(
        redis_url(), max_connections=50, timeout=2.0, socket_timeout=1.0
    )
    client = async_redis.Redis(connection_pool=pool)
else:
    client = async_redis.Redis.from_url(redis_url())
if KIND == "appkit-script":
    script = client.register_script(PROJECT_RATE_LIMITER_LUA)
    KEYS = ["bench:rl:{o:p}:/items/{item_id}", "bench:rlo:{o:p}:/items/{item_id}"]
    ARGS = [MAX_REQUESTS, WINDOW_SECONDS, 1]
else:
    script = client.register_script("return redis.call('INCR', KEYS[1])")
    KEYS, ARGS = ["bench:evalsha"], []


async def one_round_trip() -> None:
    """One EVALSHA per request."""
    await script(KEYS, ARGS)


app = FastAPI()
app.get(PATH, dependencies=[Depends(one_round_trip)])(read_item)
