"""Variant `slowapi`: slowapi 0.1.10 on the bench Redis, the same limit, keyed by client."""

from __future__ import annotations

from fastapi import FastAPI, Request
from slowapi import Limiter, _rate_limit_exceeded_handler
from slowapi.errors import RateLimitExceeded
from slowapi.util import get_remote_address

from bench.apps.common import MAX_REQUESTS, PATH, WINDOW_SECONDS, redis_url

limiter = Limiter(key_func=get_remote_address, storage_uri=redis_url())
app = FastAPI()
app.state.limiter = limiter
app.add_exception_handler(RateLimitExceeded, _rate_limit_exceeded_handler)


@app.get(PATH)
@limiter.limit(f"{MAX_REQUESTS}/{WINDOW_SECONDS} seconds")
async def read_item(request: Request, item_id: int) -> dict[str, int]:
    """The shared endpoint; slowapi needs the `request` parameter."""
    return {"item_id": item_id}
