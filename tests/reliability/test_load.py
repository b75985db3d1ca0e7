"""Load: 500 concurrent clients over 10 projects, each with its own limit, on a real server."""

from __future__ import annotations

import asyncio
from collections import Counter

from tests.reliability.conftest import ServiceFactory
from tests.reliability.material import new_key, static_keys
from tests.reliability.wire import Connection

CLIENTS = 500
PROJECTS = 10
REQUESTS_PER_CLIENT = 2


async def test_500_concurrent_clients_get_exactly_each_projects_limit(
    start_service: ServiceFactory,
) -> None:
    # Ten projects, limits 23, 30, ... 86 per 10-minute window (no reset during the test).
    limits = {f"p{n}": 23 + 7 * n for n in range(PROJECTS)}
    keys = {project: new_key() for project in limits}
    entries = [(keys[p], "load-org", p, f"{limit}/600") for p, limit in limits.items()]
    service = start_service(APPKIT_API_KEYS=static_keys(*entries))

    statuses: dict[str, Counter[int | None]] = {project: Counter() for project in limits}
    start = asyncio.Barrier(CLIENTS)

    async def client(number: int) -> None:
        project = f"p{number % PROJECTS}"
        async with Connection(service.port) as connection:
            await start.wait()
            for _ in range(REQUESTS_PER_CLIENT):
                reply = await connection.get(f"/items/{number}", keys[project])
                statuses[project][reply.status if reply else None] += 1

    await asyncio.gather(*(client(n) for n in range(CLIENTS)))

    per_project = CLIENTS // PROJECTS * REQUESTS_PER_CLIENT
    assert {p: dict(c) for p, c in statuses.items()} == {
        p: {200: limit, 429: per_project - limit} for p, limit in limits.items()
    }
