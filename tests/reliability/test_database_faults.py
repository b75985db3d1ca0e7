"""PostgreSQL cut off and restored behind a TCP proxy the test controls, with no app restart."""

from __future__ import annotations

import json

import pytest

from tests.reliability.conftest import ServiceFactory, proxied_url
from tests.reliability.material import new_key, static_keys
from tests.reliability.servers import ServiceProcess, TcpProxy
from tests.reliability.wire import Connection, Reply

pytestmark = pytest.mark.postgres


async def get(service: ServiceProcess, path: str, key: str | None = None) -> Reply:
    async with Connection(service.port) as connection:
        reply = await connection.get(path, key)
    assert reply is not None
    return reply


async def test_database_down_answers_503_and_back_answers_200_without_restart(
    pg_proxy: TcpProxy, start_service: ServiceFactory
) -> None:
    key = new_key()
    service = start_service(
        APPKIT_DATABASE_URL=proxied_url(pg_proxy),
        APPKIT_API_KEYS=static_keys((key, "org", "db", "1000/600")),
    )
    assert (await get(service, "/db", key)).status == 200
    assert (await get(service, "/readyz")).status == 200

    pg_proxy.cut()
    ready = await get(service, "/readyz")
    down = [await get(service, "/db", key) for _ in range(5)]
    no_database_needed = await get(service, "/items/1", key)

    assert ready.status == 503
    checks = json.loads(ready.body)["checks"]
    assert checks["database:default"] != "ok"
    assert checks["redis"] == "ok"
    assert [reply.status for reply in down] == [503] * 5
    assert {reply.headers["retry-after"] for reply in down} == {"5"}
    # asyncpg's refused connect reaches the app unwrapped; the session names the database.
    assert {json.loads(reply.body)["detail"] for reply in down} == {
        "The database is unavailable; retry later."
    }
    assert no_database_needed.status == 200

    pg_proxy.restore()
    back = await get(service, "/db", key)
    assert (back.status, json.loads(back.body)) == (200, {"answer": 42})
    assert (await get(service, "/readyz")).status == 200
    assert "GET /db: d" in service.log()  # "database unavailable" or "dependency unavailable"


async def test_database_on_a_closed_port_from_the_start(
    pg_proxy: TcpProxy, start_service: ServiceFactory
) -> None:
    key = new_key()
    pg_proxy.cut()
    service = start_service(
        APPKIT_DATABASE_URL=proxied_url(pg_proxy),
        APPKIT_API_KEYS=static_keys((key, "org", "db", "1000/600")),
    )
    assert (await get(service, "/readyz")).status == 503
    assert (await get(service, "/db", key)).status == 503
    assert "not ready at start-up" in service.log()

    pg_proxy.restore()
    assert (await get(service, "/db", key)).status == 200
    assert (await get(service, "/readyz")).status == 200
