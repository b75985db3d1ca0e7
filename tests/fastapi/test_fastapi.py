from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from pydantic import BaseModel, Field

from appkit_runtime.fastapi.fastapi import get_fastapi_app
from appkit_runtime.settings import get_async_redis_instance, get_settings
from tests.conftest import RedisServer, free_port


@asynccontextmanager
async def client_for(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


class Named(BaseModel):
    """A body with one string field, checked by a pattern as the template's strings are."""

    name: str = Field(pattern=r"^[^\x00]*$")


@pytest.fixture
def sqlite_database(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("APPKIT_DATABASE_URL", f"sqlite:///{tmp_path}/app.db")


@pytest.mark.usefixtures("real_redis", "sqlite_database")
async def test_user_lifespan_runs_inside_the_runtimes() -> None:
    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = get_async_redis_instance("cache")
        await redis.ping()
        events.append("user start-up")
        yield
        # The runtime has not closed the pools yet: the user's shutdown may still use Redis.
        await redis.set(f"{get_settings().redis_prefix}:bye", "1")
        events.append("user shutdown")
        events.append(f"pool open: {redis.connection_pool._available_connections != []}")

    app = get_fastapi_app("lifespan-test", lifespan=lifespan)
    async with client_for(app) as client:
        events.append("serving")
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        redis = get_async_redis_instance("cache")
    assert events == ["user start-up", "serving", "user shutdown", "pool open: True"]
    assert all(not c.is_connected for c in redis.connection_pool._available_connections)


@pytest.mark.usefixtures("sqlite_database")
async def test_readyz_names_redis_while_it_is_down_and_recovers(
    monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer
) -> None:
    monkeypatch.setenv("APPKIT_REDIS_URL", redis_server.url)
    app = get_fastapi_app("readyz-test")
    async with client_for(app) as client:
        down = await client.get("/readyz")
        assert down.status_code == 503
        assert down.json() == {
            "status": "unavailable",
            "checks": {"redis": "ConnectionError", "database:default": "ok"},
        }
        assert down.headers["retry-after"] == "5"
        redis_server.start()
        up = await client.get("/readyz")
        assert up.status_code == 200
        assert up.json()["checks"] == {"redis": "ok", "database:default": "ok"}


@pytest.mark.usefixtures("real_redis")
async def test_readyz_names_the_database_while_it_is_down(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APPKIT_DATABASE_URL", f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    app = get_fastapi_app("readyz-db-test")
    async with client_for(app) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["redis"] == "ok"
    assert checks["database:default"] != "ok"


@pytest.mark.usefixtures("real_redis", "sqlite_database")
async def test_health_routes_answer_get_and_head_and_refuse_other_methods() -> None:
    app = get_fastapi_app("health-methods-test")

    @app.get("/{anything}")
    async def catch_all(anything: str) -> dict[str, str]:
        return {"caught": anything}

    async with client_for(app) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}  # not the catch-all
        assert (await client.head("/healthz")).status_code == 200
        wrong_method = await client.post("/healthz")
        text = (await client.get("/metrics")).text
    assert wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "GET, HEAD"
    assert wrong_method.json() == {"detail": "Method Not Allowed"}
    assert 'route="/healthz",service="health-methods-test",status="200"' in text
    assert 'route="/healthz",service="health-methods-test",status="405"' in text


@pytest.mark.usefixtures("real_redis", "sqlite_database")
async def test_a_lone_surrogate_in_a_json_body_is_a_422_not_a_500() -> None:
    app = get_fastapi_app("surrogate-test")

    @app.post("/named")
    async def create(body: Named) -> dict[str, str]:
        return {"name": body.name}

    async with client_for(app) as client:
        # Valid JSON text, but the string it holds cannot be encoded as UTF-8.
        answer = await client.post(
            "/named", content=b'{"name": "\\ud800"}', headers={"content-type": "application/json"}
        )
        plain = await client.post("/named", json={"name": 5})
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "name"]
    assert plain.status_code == 422
    assert plain.json()["detail"][0]["msg"] == "Input should be a valid string"


@pytest.mark.usefixtures("real_redis", "sqlite_database")
async def test_metrics_label_the_route_template_not_the_raw_path() -> None:
    app = get_fastapi_app("metrics-test")

    @app.get("/widgets/{widget_id}")
    async def read_widget(widget_id: int) -> dict[str, int]:
        return {"id": widget_id}

    async with client_for(app) as client:
        for widget_id in (41, 42, 43):
            assert (await client.get(f"/widgets/{widget_id}")).status_code == 200
        await client.get("/no/such/page")
        text = (await client.get("/metrics")).text
    template_line = (
        'appkit_http_requests_total{method="GET",route="/widgets/{widget_id}",'
        'service="metrics-test",status="200"} 3.0'
    )
    assert template_line in text
    assert "/widgets/42" not in text
    assert "/no/such/page" not in text
    assert 'route="<unmatched>",service="metrics-test",status="404"' in text
    assert (
        'appkit_http_request_duration_seconds_count{method="GET",route="/widgets/{widget_id}"'
        in text
    )


def test_bad_settings_stop_the_app_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APPKIT_RATELIMIT_DEFAULT", "ten")
    get_settings.cache_clear()
    with pytest.raises(SystemExit) as stopped:
        get_fastapi_app("bad-settings")
    assert str(stopped.value.code).startswith("appkit: APPKIT_RATELIMIT_DEFAULT: expected N/S")
    assert "\n" not in str(stopped.value.code)


def test_name_is_the_default_service_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APPKIT_SERVICE_NAME", raising=False)
    get_fastapi_app("orders")
    assert get_settings().service_name == "orders"
    assert get_settings().embedded_database_url == "sqlite+aiosqlite:///./orders.db"
