"""Drive one bench app in this process: its lifespan, warm-up, then `count` GET requests.

`python -m bench._in_process <module:app> <count> [path]`; run under callgrind by
`bench.instructions`.
No server and no socket: what is left is the app's own work per request.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
from typing import Any

from asgi_lifespan import LifespanManager

from bench.apps.common import API_KEY, URL_PATH

# Enough for the key to be cached and the quota lease at its largest block.
WARM_UP = 1_100
SCOPE = {
    "type": "http",
    "asgi": {"version": "3.0"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": URL_PATH,
    "raw_path": URL_PATH.encode(),
    "query_string": b"",
    "root_path": "",
    "headers": [(b"host", b"bench"), (b"user-agent", b"wrk"), (b"x-api-key", API_KEY.encode())],
    "client": ("127.0.0.1", 40000),
    "server": ("127.0.0.1", 8000),
}


async def drive(target: str, count: int, path: str = URL_PATH) -> None:
    """Warm the app up, then serve `count` requests; exit at once after the last one."""
    module, _, name = target.partition(":")
    app = getattr(importlib.import_module(module), name)
    statuses: set[int] = set()
    scope = dict(SCOPE, path=path, raw_path=path.encode())

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.add(message["status"])

    async with LifespanManager(app) as manager:
        for _ in range(WARM_UP + count):
            await manager.app(dict(scope, state={}), receive, send)
        if statuses != {200}:
            raise SystemExit(f"bench: {target} answered {sorted(statuses)}, not only 200")
        # Leave without the shutdown flush: the instructions counted stop at the last request.
        os._exit(0)


if __name__ == "__main__":
    asyncio.run(drive(sys.argv[1], int(sys.argv[2]), *sys.argv[3:]))
