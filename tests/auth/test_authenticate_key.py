"""`AuthenticateKey` on a tiny app: status, body and headers for each way a key can fail."""

from __future__ import annotations

from typing import Annotated

import pytest
from asgi_lifespan import LifespanManager
from fastapi import Depends, FastAPI
from httpx import ASGITransport, AsyncClient

from appkit_runtime.auth import register_static_key
from appkit_runtime.fastapi.authentication import AuthDenied, AuthenticateKey, denied_response
from appkit_runtime.fastapi.fastapi import get_fastapi_app
from appkit_runtime.settings import RateLimit
from appkit_runtime.tokens import ProjectToken

TOKEN = ProjectToken("acme", "shop", key_id="k1", product="search", scopes=frozenset({"read"}))


def assert_unauthorized(response, detail: str) -> None:
    assert response.status_code == 401
    assert response.json() == {"detail": detail}
    assert response.headers["www-authenticate"] == "Bearer"


async def test_no_key_is_401(client_for, api_key) -> None:
    api_key()
    response = await client_for(AuthenticateKey()).get("/items")
    assert_unauthorized(response, "Missing API key")


async def test_wrong_key_is_401(client_for, api_key) -> None:
    api_key()
    response = await client_for(AuthenticateKey()).get("/items", headers={"X-API-Key": "nope"})
    assert_unauthorized(response, "Invalid API key")
    assert "nope" not in response.text


@pytest.mark.parametrize(
    "header",
    [
        {"Authorization": "Bearer " + "k" * 8192},
        {"X-API-Key": "k" * 8192},
        {"X-API-Key": "ключ-ключ".encode()},
        {"Authorization": "Bearer ab\tcd"},
        {"Authorization": "Bearer "},
    ],
    ids=["bearer-8kb", "header-8kb", "non-ascii", "control-char", "empty"],
)
async def test_malformed_key_is_401_without_asking_the_authority(
    client_for, counting_auth, header
) -> None:
    auth = counting_auth({})
    response = await client_for(auth).get("/items", headers=header)
    assert_unauthorized(response, "Invalid API key")
    assert auth.calls == {}


async def test_other_authorization_scheme_counts_as_no_key(client_for, api_key) -> None:
    api_key()
    response = await client_for(AuthenticateKey()).get(
        "/items", headers={"Authorization": "Basic dXNlcjpwYXNz"}
    )
    assert_unauthorized(response, "Missing API key")


@pytest.mark.parametrize("how", ["bearer", "lowercase-bearer", "x-api-key"])
async def test_good_key_is_200_and_put_on_request_state(client_for, api_key, how) -> None:
    key = api_key("acme", "shop")
    headers = {
        "bearer": {"Authorization": f"Bearer {key}"},
        "lowercase-bearer": {"authorization": f"bearer {key}"},
        "x-api-key": {"X-API-Key": key},
    }[how]
    response = await client_for(AuthenticateKey()).get("/items", headers=headers)
    assert response.status_code == 200
    assert response.json() == {"org_id": "acme", "project_id": "shop", "on_state": True}


async def test_the_dependency_returns_the_full_token(api_key) -> None:
    key = api_key("acme", "shop", key_id="k9", product="search", scopes=["read"], rate_limit="5/60")
    app = FastAPI()

    @app.get("/t")
    async def show(token: Annotated[ProjectToken, Depends(AuthenticateKey())]) -> dict[str, bool]:
        assert token == ProjectToken(
            "acme", "shop", "k9", "search", frozenset({"read"}), RateLimit(5, 60)
        )
        return {"ok": True}

    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as client:
        response = await client.get("/t", headers={"X-API-Key": key})
    assert response.json() == {"ok": True}


async def test_wrong_product_is_403(client_for, counting_auth) -> None:
    auth = counting_auth({"key-1": TOKEN}, product="billing")
    response = await client_for(auth).get("/items", headers={"X-API-Key": "key-1"})
    assert response.status_code == 403
    assert response.json() == {"detail": "API key is not valid for this product"}
    assert "www-authenticate" not in response.headers


async def test_missing_scope_is_403(client_for, counting_auth) -> None:
    auth = counting_auth({"key-1": TOKEN}, product="search", scopes=["read", "write"])
    response = await client_for(auth).get("/items", headers={"X-API-Key": "key-1"})
    assert response.status_code == 403
    assert response.json() == {"detail": "API key lacks a required scope"}


async def test_matching_product_and_scopes_is_200(client_for, counting_auth) -> None:
    auth = counting_auth({"key-1": TOKEN}, product="search", scopes=["read"])
    response = await client_for(auth).get("/items", headers={"X-API-Key": "key-1"})
    assert response.status_code == 200


async def test_key_without_product_opens_every_product(client_for, api_key) -> None:
    key = api_key(scopes=["read"])
    auth = AuthenticateKey(product="search", scopes=["read"])
    response = await client_for(auth).get("/items", headers={"X-API-Key": key})
    assert response.status_code == 200


async def test_cached_token_is_still_checked_for_product(client_for, api_key) -> None:
    key = api_key(product="search")
    search, billing = AuthenticateKey(product="search"), AuthenticateKey(product="billing")
    assert (await client_for(search).get("/items", headers={"X-API-Key": key})).status_code == 200
    assert (await client_for(billing).get("/items", headers={"X-API-Key": key})).status_code == 403


def test_openapi_shows_the_security_scheme() -> None:
    app = FastAPI()

    @app.get("/items", dependencies=[Depends(AuthenticateKey())])
    async def items() -> dict[str, str]:
        return {}

    schema = app.openapi()
    assert schema["components"]["securitySchemes"]["APIKey"]["scheme"] == "bearer"
    assert schema["paths"]["/items"]["get"]["security"] == [{"APIKey": []}]


async def test_the_runtime_answers_denials_byte_for_byte_as_fastapi_does(client_for) -> None:
    runtime = get_fastapi_app("denials", databases=())
    runtime.get("/items", dependencies=[Depends(AuthenticateKey(product="search"))])(lambda: {})
    assert runtime.exception_handlers[AuthDenied] is denied_response
    plain = client_for(AuthenticateKey(product="search"))  # FastAPI's own handler
    key = register_static_key("other-product-key", org_id="o", project_id="p", product="mail")
    shown = ("content-type", "content-length", "www-authenticate")
    try:
        async with (
            LifespanManager(runtime) as started,
            AsyncClient(transport=ASGITransport(started.app), base_url="http://t") as ours,
        ):
            for headers in ({}, {"X-API-Key": "unknown-key"}, {"X-API-Key": "other-product-key"}):
                expected, answer = await plain.get("/items", headers=headers), None
                for _ in range(2):  # the second from the encoded body kept
                    answer = await ours.get("/items", headers=headers)
                    assert (answer.status_code, answer.content) == (
                        expected.status_code,
                        expected.content,
                    )
                    assert [answer.headers.get(h) for h in shown] == [
                        expected.headers.get(h) for h in shown
                    ]
    finally:
        key()
