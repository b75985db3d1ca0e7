"""What every bench variant shares: the endpoint, its path, the limit and the key."""

from __future__ import annotations

import json
import os

PATH = "/items/{item_id}"
URL_PATH = "/items/42"
# The unprotected route of the protected app: "protected over public, same app".
PUBLIC_PATH = "/public/items/{item_id}"
PUBLIC_URL_PATH = "/public/items/42"
API_KEY = "bench-key-0123456789abcdef"
# High enough never to be reached in a bench run, so every answer is a 200.
MAX_REQUESTS = 1_000_000_000
WINDOW_SECONDS = 60


async def read_item(item_id: int) -> dict[str, int]:
    """The endpoint every variant serves."""
    return {"item_id": item_id}


def redis_url() -> str:
    """The bench's own Redis, shared by every variant."""
    return os.environ["BENCH_REDIS_URL"]


def appkit_environment(redis: str) -> dict[str, str]:
    """The `APPKIT_*` variables of the appkit variants: one static key, Redis, no database."""
    key = {
        "key": API_KEY,
        "org_id": "bench-org",
        "project_id": "bench-project",
        "rate_limit": f"{MAX_REQUESTS}/{WINDOW_SECONDS}",
    }
    return {
        "APPKIT_ENV": "development",
        "APPKIT_SERVICE_NAME": "bench",
        "APPKIT_REDIS_URL": redis,
        "APPKIT_REDIS_PREFIX": "bench",
        "APPKIT_AUTH_BACKEND": "static",
        "APPKIT_API_KEYS": json.dumps([key]),
        # Like the other variants (uvicorn runs with --no-access-log): no access line.
        "APPKIT_ACCESS_LOG": "false",
    }
