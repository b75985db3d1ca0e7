"""Minimal Django settings for the decorator tests, and real Redis with fresh auth caches."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.conf import settings

from appkit_runtime.auth import reset_auth_caches
from appkit_runtime.settings import get_settings
from appkit_runtime.testing.keys import api_key  # noqa: F401  (also served by the plugin)


def configure_django() -> None:
    """Minimal settings, once per process (other test folders call it too)."""
    if not settings.configured:
        settings.configure(
            DEBUG=False, ALLOWED_HOSTS=["*"], SECRET_KEY="test", MIDDLEWARE=[], INSTALLED_APPS=[]
        )
        import django

        django.setup()


configure_django()


@pytest.fixture(autouse=True)
def auth_env(real_redis: str) -> Iterator[None]:
    """Every test runs on the real Redis (sync clients) with fresh settings and caches."""
    get_settings.cache_clear()
    reset_auth_caches()
    yield
    get_settings.cache_clear()
    reset_auth_caches()
