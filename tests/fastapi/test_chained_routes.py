"""Protected routes run their chain before FastAPI's solver, whichever way they are declared."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import PlainTextResponse

from appkit_runtime.errors import RouteOrderError
from appkit_runtime.fastapi import protected
from appkit_runtime.fastapi.chain import ProtectedChain
from appkit_runtime.fastapi.chained_routes import ChainedHandler, _route_targets, chained_handler
from appkit_runtime.fastapi.fastapi import get_fastapi_app
from appkit_runtime.tokens import ProjectToken
from tests.fastapi.test_fastapi import client_for

pytestmark = pytest.mark.usefixtures("real_redis", "sqlite_database")


@pytest.fixture
def sqlite_database(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("APPKIT_DATABASE_URL", f"sqlite:///{tmp_path}/app.db")


def _endpoint(calls: list[str]) -> Callable[..., object]:
    """An endpoint with a dependency of its own, both recording that they ran and in what
    order, and that they saw the token the chain left."""

    def own_dependency(request: Request) -> str:
        calls.append(f"dependency:{request.state.project_token.project_id}")
        return "seen"

    async def endpoint(order_id: int, own: str = Depends(own_dependency)) -> dict[str, object]:
        calls.append("endpoint")
        return {"order": order_id, "own": own}

    return endpoint


def on_the_app(calls: list[str]) -> tuple[FastAPI, str]:
    app = get_fastapi_app("chained-app")
    app.get("/orders/{order_id}", dependencies=protected(max_requests=2, expiry=60))(
        _endpoint(calls)
    )
    return app, "/orders"


def on_a_router(calls: list[str]) -> tuple[FastAPI, str]:
    app = get_fastapi_app("chained-router")
    router = APIRouter()
    router.get("/orders/{order_id}", dependencies=protected(max_requests=2, expiry=60))(
        _endpoint(calls)
    )
    app.include_router(router, prefix="/v1")
    return app, "/v1/orders"


def router_level(calls: list[str]) -> tuple[FastAPI, str]:
    app = get_fastapi_app("chained-router-level")
    inner = APIRouter(dependencies=protected(max_requests=2, expiry=60))
    inner.get("/orders/{order_id}")(_endpoint(calls))
    outer = APIRouter(prefix="/v2")
    outer.include_router(inner, prefix="/inner")
    app.include_router(outer)
    return app, "/v2/inner/orders"


def at_inclusion(calls: list[str]) -> tuple[FastAPI, str]:
    app = get_fastapi_app("chained-inclusion")
    router = APIRouter()
    router.get("/orders/{order_id}")(_endpoint(calls))
    app.include_router(router, dependencies=protected(max_requests=2, expiry=60))
    return app, "/orders"


def by_add_api_route(calls: list[str]) -> tuple[FastAPI, str]:
    app = get_fastapi_app("chained-add-api-route")
    app.add_api_route(
        "/orders/{order_id}",
        _endpoint(calls),
        methods=["GET"],
        dependencies=protected(max_requests=2, expiry=60),
    )
    return app, "/orders"


def in_a_mounted_app(calls: list[str]) -> tuple[FastAPI, str]:
    app = get_fastapi_app("chained-outer")
    sub = get_fastapi_app("chained-mounted")
    sub.get("/orders/{order_id}", dependencies=protected(max_requests=2, expiry=60))(
        _endpoint(calls)
    )
    app.mount("/mounted", sub)
    return app, "/mounted/orders"


DECLARATIONS = [on_the_app, on_a_router, router_level, at_inclusion, by_add_api_route]


def chained(app: FastAPI) -> list[ChainedHandler]:
    handlers = (chained_handler(target) for target, _ in _route_targets(app))
    return [handler for handler in handlers if handler is not None]


@pytest.mark.parametrize("declare", [*DECLARATIONS, in_a_mounted_app])
async def test_every_way_of_declaring_a_protected_route_runs_its_chain_first(
    declare, api_key
) -> None:
    calls: list[str] = []
    app, prefix = declare(calls)
    key = api_key("acme", "orders")
    async with client_for(app) as client:
        assert len(chained(app)) == 1  # the route is served without the chain in the solver
        missing = await client.get(f"{prefix}/1")
        assert missing.status_code == 401
        assert missing.json() == {"detail": "Missing API key"}
        assert missing.headers["www-authenticate"] == "Bearer"
        assert calls == []  # neither the endpoint nor its own dependency ran

        headers = {"Authorization": f"Bearer {key}"}
        first = await client.get(f"{prefix}/7", headers=headers)
        assert first.status_code == 200
        assert first.json() == {"order": 7, "own": "seen"}
        assert first.headers["ratelimit"] == '"default";r=1;t=60'
        assert first.headers["ratelimit-policy"] == '"default";q=2;w=60'
        assert calls == ["dependency:orders", "endpoint"]

        assert (await client.get(f"{prefix}/8", headers=headers)).status_code == 200
        limited = await client.get(f"{prefix}/9", headers=headers)
        assert limited.status_code == 429
        assert limited.json() == {"detail": "Rate limit exceeded"}
        assert limited.headers["retry-after"]
        assert calls.count("endpoint") == 2


async def test_a_chain_that_is_not_the_first_dependency_stays_in_the_solver(api_key) -> None:
    ran: list[str] = []

    def first() -> None:
        ran.append("first")

    app = get_fastapi_app("chain-second")

    @app.get("/late", dependencies=[Depends(first), *protected()])
    async def late(request: Request) -> str:
        return request.state.project_token.project_id

    async with client_for(app) as client:
        assert chained(app) == []
        assert (await client.get("/late")).status_code == 401
        assert ran == ["first"]  # declared order kept: it ran before the chain refused
        key = api_key("acme", "late")
        answer = await client.get("/late", headers={"X-API-Key": key})
        assert answer.json() == "late"
        assert answer.headers["ratelimit"]


async def test_dependency_overrides_of_the_chain_still_apply(api_key) -> None:
    app = get_fastapi_app("chain-override")
    dependencies = protected()

    @app.get("/who", dependencies=dependencies)
    async def who(request: Request) -> str:
        return request.state.project_token.project_id

    def fake_chain(request: Request) -> ProjectToken:
        token = ProjectToken(org_id="test", project_id="overridden")
        request.state.project_token = token
        return token

    async with client_for(app) as client:
        assert (await client.get("/who")).status_code == 401
        app.dependency_overrides[dependencies[0].dependency] = fake_chain
        assert (await client.get("/who")).json() == "overridden"
        app.dependency_overrides.clear()
        assert (await client.get("/who")).status_code == 401


async def test_the_endpoints_own_response_keeps_its_headers_and_gets_the_limit_fields(
    api_key,
) -> None:
    app = get_fastapi_app("chain-own-response")

    @app.get("/plain", dependencies=protected(max_requests=5, expiry=10))
    async def plain() -> PlainTextResponse:
        return PlainTextResponse("ok", headers={"X-Own": "kept"})

    key = api_key("acme", "plain")
    async with client_for(app) as client:
        answer = await client.get("/plain", headers={"X-API-Key": key})
    assert answer.text == "ok"
    assert answer.headers["x-own"] == "kept"
    assert answer.headers["ratelimit"] == '"default";r=4;t=10'


async def test_an_unauthenticated_body_is_refused_before_it_is_parsed() -> None:
    app = get_fastapi_app("chain-body")

    @app.post("/things", dependencies=protected())
    async def create(payload: dict[str, int]) -> dict[str, int]:
        return payload

    async with client_for(app) as client:
        answer = await client.post(
            "/things", content=b"{not json", headers={"Content-Type": "application/json"}
        )
    assert answer.status_code == 401  # not the 422 that would tell a stranger the schema


async def test_start_up_refuses_a_route_whose_chain_was_swapped_after_chaining() -> None:
    app = get_fastapi_app("chain-swapped")

    @app.get("/swapped", dependencies=protected())
    async def swapped() -> None: ...

    async with client_for(app):
        pass
    (route,) = [target for target, _ in _route_targets(app) if target.path == "/swapped"]
    other = protected()[0].dependency
    assert isinstance(other, ProtectedChain)
    route.dependant.dependencies[0].call = other
    with pytest.raises(RouteOrderError, match=r"^GET /swapped: its dependencies changed"):
        async with client_for(app):
            pass


@pytest.mark.parametrize("form", ["protected", "three-depends"])
async def test_each_inclusion_of_a_router_has_its_own_counter(form, api_key) -> None:
    from appkit_runtime.fastapi import AddJobToMetrics, AuthenticateKey, ProjectRateLimiter

    app = get_fastapi_app("two-inclusions")
    if form == "protected":
        dependencies = protected(max_requests=1, expiry=60)
    else:
        dependencies = [
            Depends(AuthenticateKey()),
            Depends(ProjectRateLimiter(max_requests=1, expiry=60)),
            Depends(AddJobToMetrics()),
        ]
    router = APIRouter()

    @router.get("/orders/{order_id}", dependencies=dependencies)
    async def order(order_id: int) -> int:
        return order_id

    app.include_router(router, prefix="/v1")
    app.include_router(router, prefix="/v2")
    headers = {"X-API-Key": api_key("acme", "inclusions")}
    async with client_for(app) as client:
        statuses = [
            (await client.get(f"{prefix}/orders/1", headers=headers)).status_code
            for prefix in ("/v1", "/v2", "/v1", "/v2")
        ]
        metrics = (await client.get("/metrics")).text
    assert statuses == [200, 200, 429, 429]
    for prefix in ("/v1", "/v2"):
        series = f'route="{prefix}/orders/{{order_id}}"'
        assert any(series in line and 'status="429"' in line for line in metrics.splitlines())


async def test_a_chain_the_endpoint_takes_as_a_parameter_stays_in_the_solver(api_key) -> None:
    from appkit_runtime.fastapi import AddJobToMetrics, ProjectRateLimiter

    app = get_fastapi_app("chain-parameter")
    alone = ProtectedChain(limiter=ProjectRateLimiter(), metrics=AddJobToMetrics())
    both = protected(max_requests=50, expiry=60)

    @app.get("/alone")
    async def parameter_only(token: ProjectToken = Depends(alone)) -> str:
        return token.project_id

    @app.get("/both", dependencies=both)
    async def route_and_parameter(token: ProjectToken = both[0]) -> str:
        return token.project_id

    headers = {"X-API-Key": api_key("acme", "param")}
    async with client_for(app) as client:
        assert chained(app) == []
        assert (await client.get("/alone", headers=headers)).json() == "param"
        answer = await client.get("/both", headers=headers)
        metrics = (await client.get("/metrics")).text
    assert answer.json() == "param"
    assert answer.headers.get_list("ratelimit") == ['"default";r=49;t=60']  # one run, not two
    (jobs,) = [
        line
        for line in metrics.splitlines()
        if line.startswith("appkit_jobs_total{") and 'route="/both"' in line
    ]
    assert jobs.endswith(" 1.0")


async def test_a_custom_route_class_keeps_wrapping_the_chains_answers(api_key) -> None:
    from fastapi import HTTPException
    from fastapi.responses import JSONResponse
    from fastapi.routing import APIRoute

    class EnvelopeRoute(APIRoute):
        def get_route_handler(self):
            handler = super().get_route_handler()

            async def enveloped(request: Request):
                try:
                    return await handler(request)
                except HTTPException as error:
                    return JSONResponse({"error": error.detail}, error.status_code)

            return enveloped

    app = get_fastapi_app("chain-route-class")
    router = APIRouter(route_class=EnvelopeRoute)

    @router.get("/wrapped", dependencies=protected())
    async def wrapped() -> str:
        return "ok"

    app.include_router(router)
    async with client_for(app) as client:
        assert chained(app) == []
        answer = await client.get("/wrapped")
    assert answer.status_code == 401
    assert answer.json() == {"error": "Missing API key"}


async def test_a_request_refused_for_its_body_is_not_a_job(api_key) -> None:
    app = get_fastapi_app("chain-bad-body")

    @app.post("/things", dependencies=protected())
    async def create(payload: dict[str, int]) -> dict[str, int]:
        return payload

    headers = {"X-API-Key": api_key("acme", "bodies"), "Content-Type": "application/json"}
    async with client_for(app) as client:
        assert len(chained(app)) == 1
        assert (await client.post("/things", content=b"{bad", headers=headers)).status_code == 422
        assert (
            await client.post("/things", content=b'{"a": "x"}', headers=headers)
        ).status_code == 422
        assert (
            await client.post("/things", content=b'{"a": 1}', headers=headers)
        ).status_code == 200
        metrics = (await client.get("/metrics")).text
    (jobs,) = [
        line
        for line in metrics.splitlines()
        if line.startswith("appkit_jobs_total{") and 'route="/things"' in line
    ]
    assert jobs.endswith(" 1.0")


async def test_a_mounted_apps_routes_are_named_with_the_mount_path(api_key) -> None:
    app = get_fastapi_app("mount-outer")
    sub = get_fastapi_app("mount-inner")
    for owner in (app, sub):
        owner.get("/s", dependencies=protected(max_requests=1, expiry=60))(_endpoint([]))
    app.mount("/sub", sub)
    headers = {"X-API-Key": api_key("acme", "mounts")}
    async with client_for(app) as client:
        statuses = [
            (await client.get(path, headers=headers, params={"order_id": 1})).status_code
            for path in ("/s", "/sub/s", "/s", "/sub/s")
        ]
        metrics = (await client.get("/metrics")).text
    assert statuses == [200, 200, 429, 429]
    assert 'route="/sub/s"' in metrics


async def test_an_unhandled_error_is_counted_as_a_500(api_key) -> None:
    import httpx
    from asgi_lifespan import LifespanManager

    app = get_fastapi_app("metrics-500")

    @app.get("/boom", dependencies=protected())
    async def boom() -> None:
        raise RuntimeError("boom")

    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            answer = await client.get("/boom", headers={"X-API-Key": api_key("acme", "boom")})
            metrics = (await client.get("/metrics")).text
    assert answer.status_code == 500
    assert any(
        line.startswith("appkit_http_requests_total{")
        and 'route="/boom"' in line
        and 'status="500"' in line
        and line.endswith(" 1.0")
        for line in metrics.splitlines()
    )
