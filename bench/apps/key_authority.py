"""A stand-in `http` key authority for the flood run: one valid key, every other key unknown.

It answers after `BENCH_AUTHORITY_DELAY_MS` (a network round trip to a real service) and
counts calls and the most it ever had in flight, served at `GET /stats`.
"""

from __future__ import annotations

import asyncio
import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

VALID_KEY = os.environ.get("BENCH_VALID_KEY", "")
DELAY = float(os.environ.get("BENCH_AUTHORITY_DELAY_MS", "2")) / 1000
stats = {"calls": 0, "in_flight": 0, "max_in_flight": 0}


async def resolve(request: Request) -> JSONResponse:
    body = await request.json()
    stats["calls"] += 1
    stats["in_flight"] += 1
    stats["max_in_flight"] = max(stats["max_in_flight"], stats["in_flight"])
    try:
        await asyncio.sleep(DELAY)
    finally:
        stats["in_flight"] -= 1
    if body.get("key") != VALID_KEY:
        return JSONResponse({"detail": "unknown key"}, status_code=404)
    token = {"org_id": "bench-org", "project_id": "bench-project", "rate_limit": "1000000000/60"}
    return JSONResponse({**token, "ttl": 300})


async def read_stats(request: Request) -> JSONResponse:
    return JSONResponse(stats)


app = Starlette(routes=[Route("/", resolve, methods=["POST"]), Route("/stats", read_stats)])
