"""Fixtures that only a service's suite (`appkit_app` set) gets: every test in its own
transaction on the test database, and the app, metrics and usage as they were at the start."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncConnection

from appkit_runtime.testing.transaction import shared_transaction, truncate_tables

TRANSACTIONAL = "appkit_transactional_db"
# Fixtures whose tests must not run in the shared transaction.
UNSHARED = frozenset({TRANSACTIONAL, "appkit_database_down"})


class ServiceFixtures:
    """Registered as a plugin by `pytest_configure` when the run tests a service."""

    def __init__(self, app: Any) -> None:
        self.app = app

    @pytest_asyncio.fixture(autouse=True)
    async def _appkit_transaction(
        self, request: pytest.FixtureRequest
    ) -> AsyncIterator[AsyncConnection | None]:
        """The test's transaction, rolled back after it; with `appkit_transactional_db`, none,
        and every table emptied after the test (here: after every other fixture let go)."""
        if TRANSACTIONAL in request.fixturenames:
            yield None
            await truncate_tables()
            return
        if UNSHARED.intersection(request.fixturenames):
            yield None
            return
        async with shared_transaction() as connection:
            yield connection

    @pytest.fixture(autouse=True)
    def _appkit_fresh_app(self) -> Iterator[None]:
        """Request metrics, usage counts and `app.dependency_overrides` reset for every test."""
        from appkit_runtime.fastapi.request_metrics import REQUEST_TIMINGS
        from appkit_runtime.ratelimit.failure import FAIL_OPEN_TOTAL
        from appkit_runtime.ratelimit.leases import invalidate_leases
        from appkit_runtime.ratelimit.mode import WOULD_REJECT_TOTAL
        from appkit_runtime.usage import reset_usage

        REQUEST_TIMINGS.clear()
        FAIL_OPEN_TOTAL.reset()
        WOULD_REJECT_TOTAL.clear()
        reset_usage()
        invalidate_leases()
        overrides = getattr(self.app, "dependency_overrides", None)
        kept = dict(overrides) if overrides is not None else None
        yield
        if overrides is not None and kept is not None:
            overrides.clear()
            overrides.update(kept)


@pytest.fixture
def appkit_transactional_db() -> None:
    """Real commits for this test (no shared transaction); every table is emptied after it."""
