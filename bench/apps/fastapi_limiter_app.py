"""Variant `fastapi-limiter`: fastapi-limiter 0.2.0 (pyrate-limiter's Redis bucket) on the
bench Redis, the same limit, keyed by client and path as the library does by default."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as async_redis
from fastapi import Depends, FastAPI
from fastapi_limiter.depends import RateLimiter
from pyrate_limiter import Duration, Limiter, Rate
from pyrate_limiter.buckets.redis_bucket import RedisBucket

from bench.apps.common import MAX_REQUESTS, PATH, WINDOW_SECONDS, read_item, redis_url

RATES = [Rate(MAX_REQUESTS, Duration.SECOND * WINDOW_SECONDS)]
# The bucket needs the running loop (its script is loaded with the async client), so the
# dependency is made here and given its limiter when the app starts.
rate_limiter = RateLimiter(limiter=None)  # type: ignore[arg-type]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    client = async_redis.Redis.from_url(redis_url())
    bucket = await RedisBucket.init(RATES, client, "bench:fastapi-limiter")
    rate_limiter.limiter = Limiter(bucket)
    yield
    rate_limiter.limiter.close()
    await client.aclose()


app = FastAPI(lifespan=lifespan)
app.get(PATH, dependencies=[Depends(rate_limiter)])(read_item)
