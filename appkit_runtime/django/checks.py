"""The `appkit.E001` system check: `manage.py check` reports bad `APPKIT_*` settings."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, register

from appkit_runtime.errors import ConfigurationError
from appkit_runtime.settings import load_settings


@register("appkit")
def check_appkit_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """One error naming the variable when the environment's settings are bad (read afresh)."""
    try:
        load_settings()
    except ConfigurationError as error:
        return [Error(str(error), hint="fix the APPKIT_* variable named", id="appkit.E001")]
    return []
