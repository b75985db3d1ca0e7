"""The OpenAPI document of a service with `protected()` routes shows the scheme and the limit."""

from __future__ import annotations

import pytest
from fastapi import Depends, FastAPI

from appkit_runtime.fastapi import protected
from appkit_runtime.fastapi.fastapi import get_fastapi_app
from appkit_runtime.fastapi.openapi import rate_limit_openapi
from appkit_runtime.fastapi.ratelimit import PathRateLimiter, ProjectRateLimiter
from appkit_runtime.settings import get_settings


def service(app: FastAPI) -> FastAPI:
    @app.get("/items/{item_id}", dependencies=protected(max_requests=3, expiry=60))
    async def read_item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.post("/batch", dependencies=protected())
    async def batch() -> None: ...

    @app.get("/public", dependencies=[Depends(PathRateLimiter(max_requests=10, expiry=1))])
    async def public() -> None: ...

    @app.get("/open")
    async def open_route() -> None: ...

    rate_limit_openapi(app)
    return app


def test_protected_operations_show_the_scheme_and_the_limit(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    monkeypatch.setenv("APPKIT_DATABASE_URL", f"sqlite:///{tmp_path}/app.db")
    app = service(get_fastapi_app("openapi-limits"))

    schema = app.openapi()

    item = schema["paths"]["/items/{item_id}"]["get"]
    assert item["security"] == [{"APIKey": []}, {"APIKeyHeader": []}]
    assert item["x-ratelimit"] == {
        "scope": "project",
        "max_requests": 3,
        "expiry": 60,
        "cost": 1,
        "mode": "enforce",
        "overrides": ["project", "organisation", "api-key"],
    }
    assert "Retry-After" in item["responses"]["429"]["headers"]
    schemes = schema["components"]["securitySchemes"]
    assert schemes["APIKey"]["scheme"] == "bearer"
    assert schemes["APIKeyHeader"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "An API key.",
    }
    # The default limit comes from APPKIT_RATELIMIT_DEFAULT.
    assert schema["paths"]["/batch"]["post"]["x-ratelimit"]["max_requests"] == 100
    public = schema["paths"]["/public"]["get"]
    assert public["x-ratelimit"]["scope"] == "client"
    assert "security" not in public
    assert "x-ratelimit" not in schema["paths"]["/open"]["get"]
    assert "429" not in schema["paths"]["/open"]["get"]["responses"]
    assert app.openapi() is schema  # generated once


def test_mode_cost_and_several_limiters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APPKIT_RATELIMIT_MODE", "monitor")
    get_settings.cache_clear()
    app = FastAPI()
    limiters = [
        Depends(PathRateLimiter(max_requests=5, expiry=1)),
        Depends(PathRateLimiter(max_requests=50, expiry=60, cost=5, mode="enforce")),
    ]

    @app.get("/twice", dependencies=limiters)
    async def twice() -> None: ...

    @app.get("/single", dependencies=[Depends(ProjectRateLimiter(cost=2))])
    async def single() -> None: ...

    rate_limit_openapi(app)
    paths = app.openapi()["paths"]

    assert [(p["mode"], p["cost"]) for p in paths["/twice"]["get"]["x-ratelimit"]] == [
        ("monitor", 1),
        ("enforce", 5),
    ]
    assert paths["/single"]["get"]["x-ratelimit"]["cost"] == 2
