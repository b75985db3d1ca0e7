"""Variant `appkit-open`: `get_fastapi_app` (its middleware) with the endpoint unprotected."""

from __future__ import annotations

from appkit_runtime.fastapi.fastapi import get_fastapi_app
from bench.apps.common import PATH, read_item

app = get_fastapi_app("bench", databases=())
app.get(PATH)(read_item)
