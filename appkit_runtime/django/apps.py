"""`appkit_runtime.django` in `INSTALLED_APPS`: bad `APPKIT_*` settings stop start-up.

FastAPI services refuse to start on bad settings in `get_fastapi_app`; Django has no such
call, so `ready()` reads the settings and exits with the same one line naming the variable.
"""

from __future__ import annotations

from django.apps import AppConfig

from appkit_runtime.errors import ConfigurationError
from appkit_runtime.settings import get_settings


class AppkitRuntimeConfig(AppConfig):
    """Checks the settings once at start-up and registers the `appkit.E001` system check."""

    name = "appkit_runtime.django"
    label = "appkit_runtime"
    verbose_name = "appkit runtime"

    def ready(self) -> None:
        from appkit_runtime.django import checks  # noqa: F401  (registers the check)

        try:
            get_settings()
        except ConfigurationError as error:
            raise SystemExit(f"appkit: {error}") from None
