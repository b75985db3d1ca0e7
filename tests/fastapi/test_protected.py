from __future__ import annotations

import pytest
from fastapi import Depends, FastAPI

from appkit_runtime.errors import RouteOrderError
from appkit_runtime.fastapi import AddJobToMetrics, AuthenticateKey, ProjectRateLimiter, protected
from appkit_runtime.fastapi.fastapi import get_fastapi_app
from appkit_runtime.redis_pools import close_redis_connections
from appkit_runtime.settings import get_async_redis_instance
from appkit_runtime.usage import get_project_usage
from tests.conftest import RedisServer
from tests.fastapi.test_fastapi import client_for


@pytest.fixture(autouse=True)
def sqlite_database(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("APPKIT_DATABASE_URL", f"sqlite:///{tmp_path}/app.db")


def protected_app(name: str = "protected-test") -> FastAPI:
    app = get_fastapi_app(name)

    @app.get("/items/{item_id}", dependencies=protected(max_requests=3, expiry=60))
    async def read_item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    return app


# Commands the rate-limit script runs inside Redis (counted by commandstats, never sent).
SCRIPT_INTERNAL = {"get", "hmget", "incrby", "pttl", "pexpire", "time"}

MISORDERED = {
    "limiter first": [Depends(ProjectRateLimiter()), Depends(AuthenticateKey())],
    "metrics alone": [Depends(AddJobToMetrics())],
    "limiter without auth": [Depends(ProjectRateLimiter()), Depends(AddJobToMetrics())],
}


@pytest.mark.parametrize("dependencies", MISORDERED.values(), ids=MISORDERED.keys())
@pytest.mark.usefixtures("real_redis")
async def test_a_misordered_route_stops_start_up_naming_it(dependencies: list) -> None:
    app = get_fastapi_app("order-test")

    @app.get("/fine", dependencies=protected())
    async def fine() -> None: ...

    @app.post("/orders/{order_id}", dependencies=dependencies)
    async def update(order_id: int) -> None: ...

    with pytest.raises(RouteOrderError) as stopped:
        async with client_for(app):
            pass
    message = str(stopped.value)
    assert message.startswith("POST /orders/{order_id}: ")
    assert "runs without AuthenticateKey before it" in message
    assert "/fine" not in message


@pytest.mark.usefixtures("real_redis")
async def test_a_misordered_route_inside_an_included_router_is_found() -> None:
    from fastapi import APIRouter

    app = get_fastapi_app("nested-order")
    inner = APIRouter()

    @inner.get("/reports/{report_id}", dependencies=[Depends(AddJobToMetrics())])
    async def report(report_id: int) -> None: ...

    outer = APIRouter(prefix="/v1")
    outer.include_router(inner)
    app.include_router(outer)
    with pytest.raises(RouteOrderError, match=r"^GET /v1/reports/\{report_id\}: AddJobToMetrics"):
        async with client_for(app):
            pass


@pytest.mark.usefixtures("real_redis")
async def test_router_level_auth_counts_as_before_route_dependencies() -> None:
    from fastapi import APIRouter

    app = get_fastapi_app("router-order")
    router = APIRouter(dependencies=[Depends(AuthenticateKey())])

    @router.get("/things", dependencies=[Depends(ProjectRateLimiter()), Depends(AddJobToMetrics())])
    async def things() -> list[str]:
        return []

    app.include_router(router)
    async with client_for(app) as client:
        assert (await client.get("/things")).status_code == 401


@pytest.mark.usefixtures("real_redis")
async def test_protected_chain_authenticates_limits_and_counts(api_key, redis) -> None:
    key = api_key("acme", "orders")
    app = protected_app()
    async with client_for(app) as client:
        assert (await client.get("/items/1")).status_code == 401
        headers = {"Authorization": f"Bearer {key}"}
        statuses = [
            (await client.get(f"/items/{n}", headers=headers)).status_code for n in range(4)
        ]
        assert statuses == [200, 200, 200, 429]
    # Shutdown flushed the usage: three jobs counted, the 401 and the 429 not.
    usage = await get_project_usage(redis, "acme", "orders")
    assert sum(sum(kinds.values()) for kinds in usage.values()) == 3


async def test_a_cached_key_costs_one_redis_command(
    api_key, monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer
) -> None:
    redis_server.start()
    monkeypatch.setenv("APPKIT_REDIS_URL", redis_server.url)
    monkeypatch.setenv("APPKIT_METRICS_FLUSH_SECONDS", "3600")
    key = api_key("acme", "orders")
    app = protected_app()
    async with client_for(app) as client:
        headers = {"X-API-Key": key}
        assert (await client.get("/items/0", headers=headers)).status_code == 200
        stats = get_async_redis_instance("probe")
        before = await stats.info("commandstats")
        for n in range(1, 3):
            assert (await client.get(f"/items/{n}", headers=headers)).status_code == 200
        after = await stats.info("commandstats")
    calls = {
        name.removeprefix("cmdstat_"): after[name]["calls"] - before.get(name, {}).get("calls", 0)
        for name in after
    }
    # commandstats also counts what scripts call inside Redis; the client sent one EVALSHA
    # per request (plus the INFO that took the first snapshot) and nothing else.
    sent = {name: n for name, n in calls.items() if n and name not in SCRIPT_INTERNAL}
    assert sent == {"evalsha": 2, "info": 1}
    await close_redis_connections()


@pytest.mark.usefixtures("real_redis")
async def test_openapi_shows_the_security_scheme_on_protected_routes() -> None:
    app = protected_app("openapi-test")
    schema = app.openapi()
    operation = schema["paths"]["/items/{item_id}"]["get"]
    assert operation["security"]
    (scheme_name,) = operation["security"][0]
    assert schema["components"]["securitySchemes"][scheme_name]["scheme"] == "bearer"


@pytest.mark.usefixtures("real_redis")
async def test_routes_of_included_routers_show_their_limit_in_openapi() -> None:
    from fastapi import APIRouter

    app = get_fastapi_app("openapi-included")
    router = APIRouter(prefix="/v1")

    @router.get("/orders/{order_id}", dependencies=protected(max_requests=7, expiry=30))
    async def order(order_id: int) -> None: ...

    app.include_router(router)
    operation = app.openapi()["paths"]["/v1/orders/{order_id}"]["get"]
    assert operation["x-ratelimit"]["max_requests"] == 7
    assert operation["x-ratelimit"]["expiry"] == 30
    assert "429" in operation["responses"]
    assert operation["security"]


def test_protected_is_one_dependency_with_the_three_roles_in_order() -> None:
    from appkit_runtime.fastapi.route_order import chain_roles

    app = FastAPI()

    @app.get("/x", dependencies=protected())
    async def x() -> None: ...

    (route,) = [r for r in app.routes if getattr(r, "path", "") == "/x"]
    assert len(route.dependant.dependencies) == 1
    assert list(chain_roles(route.dependant)) == ["auth", "ratelimit", "metrics"]


@pytest.mark.usefixtures("real_redis")
async def test_a_misordered_route_in_a_mounted_app_stops_start_up() -> None:
    app = get_fastapi_app("mount-order")
    sub = FastAPI()

    @sub.get("/m", dependencies=[Depends(AddJobToMetrics())])
    async def counted() -> None: ...

    app.mount("/sub", sub)
    with pytest.raises(RouteOrderError, match=r"^GET /m: AddJobToMetrics runs without"):
        async with client_for(app):
            pass


@pytest.mark.usefixtures("real_redis")
async def test_a_websocket_with_the_chain_stops_start_up() -> None:
    from fastapi import WebSocket

    app = get_fastapi_app("websocket-chain")

    @app.websocket("/ws", dependencies=protected())
    async def socket(websocket: WebSocket) -> None: ...

    with pytest.raises(RouteOrderError, match=r"^WEBSOCKET /ws: the protected chain is for HTTP"):
        async with client_for(app):
            pass
