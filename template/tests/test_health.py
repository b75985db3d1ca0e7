"""The runtime's health and metrics routes answer in this service."""

from __future__ import annotations

from httpx import AsyncClient


async def test_healthz_answers_while_the_process_runs(app_client: AsyncClient) -> None:
    response = await app_client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_finds_redis_and_the_database(app_client: AsyncClient) -> None:
    response = await app_client.get("/readyz")

    assert response.status_code == 200
    assert set(response.json()["checks"].values()) == {"ok"}


async def test_metrics_count_requests_by_route(app_client: AsyncClient) -> None:
    await app_client.get("/healthz")

    response = await app_client.get("/metrics")

    assert response.status_code == 200
    assert 'route="/healthz"' in response.text
