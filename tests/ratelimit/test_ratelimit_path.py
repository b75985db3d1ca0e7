"""`PathRateLimiter` on public routes: per client address, trusted proxies only."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from fastapi import Depends, FastAPI

from appkit_runtime.errors import ConfigurationError
from appkit_runtime.fastapi.ratelimit import PathRateLimiter
from appkit_runtime.fastapi.route_order import route_order_problems
from appkit_runtime.ratelimit import make_client_rate_limit_key
from appkit_runtime.ratelimit.client_address import client_address
from appkit_runtime.settings import get_async_redis_instance, get_settings

ClientFactory = Callable[[FastAPI], httpx.AsyncClient]


def public_app(**options: object) -> FastAPI:
    app = FastAPI()

    @app.get("/public/{name}", dependencies=[Depends(PathRateLimiter(**options))])
    async def public(name: str) -> dict[str, str]:
        return {"name": name}

    return app


def client_from(peer: str, app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(peer, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def statuses(client: httpx.AsyncClient, count: int, **headers: str) -> list[int]:
    return [(await client.get("/public/x", headers=headers)).status_code for _ in range(count)]


async def test_each_client_has_its_own_window_per_route_template() -> None:
    app = public_app(max_requests=2, expiry=60)
    async with client_from("10.0.0.1", app) as one, client_from("10.0.0.2", app) as two:
        first = await one.get("/public/a")
        rest = [(await one.get(f"/public/{n}")).status_code for n in "bc"]
        other = await statuses(two, 1)

    assert first.headers["ratelimit-policy"] == '"default";q=2;w=60'
    assert (first.status_code, rest, other) == (200, [200, 429], [200])
    key = make_client_rate_limit_key("/public/{name}", "10.0.0.1")
    assert int(await get_async_redis_instance("ratelimit").get(key)) == 2


async def test_forwarded_for_is_ignored_from_an_untrusted_peer() -> None:
    app = public_app(max_requests=1, expiry=60)
    async with client_from("10.0.0.1", app) as client:
        # A client cannot pick a fresh address for each request.
        codes = [
            (await client.get("/public/x", headers={"x-forwarded-for": f"1.2.3.{n}"})).status_code
            for n in range(3)
        ]

    assert codes == [200, 429, 429]


async def test_forwarded_for_from_a_trusted_proxy_names_the_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("APPKIT_TRUSTED_PROXIES", "10.0.0.0/24, 192.168.1.7")
    get_settings.cache_clear()
    app = public_app(max_requests=1, expiry=60)
    async with client_from("10.0.0.9", app) as proxy:
        alice = await statuses(proxy, 2, **{"x-forwarded-for": "spoofed, 1.1.1.1, 192.168.1.7"})
        bob = await statuses(proxy, 1, **{"x-forwarded-for": "2.2.2.2"})

    assert (alice, bob) == ([200, 429], [200])


async def test_forwarded_for_lines_are_one_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APPKIT_TRUSTED_PROXIES", "10.0.0.9")
    get_settings.cache_clear()
    app = public_app(max_requests=1, expiry=60)
    async with client_from("10.0.0.9", app) as proxy:
        # The client wrote the first line; the proxy appended the second: 10.3.3.3 is the client.
        codes = [
            (
                await proxy.get(
                    "/public/x",
                    headers=[("x-forwarded-for", f"10.4.4.{n}"), ("x-forwarded-for", "10.3.3.3")],
                )
            ).status_code
            for n in range(3)
        ]

    assert codes == [200, 429, 429]
    key = make_client_rate_limit_key("/public/{name}", "10.3.3.3")
    assert int(await get_async_redis_instance("ratelimit").get(key)) == 1


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("10.0.0.1", None, "10.0.0.1"),
        ("9.9.9.9", "1.1.1.1", "9.9.9.9"),
        ("10.0.0.1", "1.1.1.1", "1.1.1.1"),
        ("10.0.0.1", "6.6.6.6, 1.1.1.1, 10.0.0.2", "1.1.1.1"),
        ("10.0.0.1", "10.0.0.3, 10.0.0.2", "10.0.0.3"),
        ("10.0.0.1", " , ", "10.0.0.1"),
        (None, "1.1.1.1", "unknown"),
        ("2001:db8::1", "2001:db8::2, 3.3.3.3", "3.3.3.3"),
        # A dual-stack listener shows an IPv4 proxy as ::ffff:10.0.0.1: still that proxy.
        ("::ffff:10.0.0.1", "1.1.1.1", "1.1.1.1"),
        ("10.0.0.1", "1.1.1.1, ::ffff:10.0.0.2", "1.1.1.1"),
    ],
)
def test_client_address(peer: str | None, forwarded: str | None, expected: str) -> None:
    assert client_address(peer, forwarded, ("10.0.0.0/8", "2001:db8::/32")) == expected


def test_a_bad_trusted_proxy_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match="^APPKIT_TRUSTED_PROXIES: 'nope'"):
        client_address("1.2.3.4", "5.6.7.8", ("nope",))
    monkeypatch.setenv("APPKIT_TRUSTED_PROXIES", "10.0.0.0/8, 300.1.1.1")
    get_settings.cache_clear()
    with pytest.raises(ConfigurationError, match="^APPKIT_TRUSTED_PROXIES: '300.1.1.1' is nei"):
        get_settings()


async def test_monitor_mode_and_fail_closed_work_as_for_projects(
    ratelimit_redis: Callable[[str], None],
) -> None:
    async with client_from("10.0.0.1", public_app(max_requests=1, mode="monitor")) as client:
        assert await statuses(client, 3) == [200, 200, 200]
    ratelimit_redis("redis://127.0.0.1:1/0")  # nothing listens there
    async with client_from("10.0.0.1", public_app(fail_open=False)) as client:
        refused = await client.get("/public/x")
    assert (refused.status_code, refused.headers["retry-after"]) == (503, "5")


def test_a_public_limiter_passes_the_route_order_check() -> None:
    assert route_order_problems(public_app()) == []
