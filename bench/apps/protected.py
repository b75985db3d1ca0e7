"""Variant `protected`: `get_fastapi_app` with `dependencies=protected()` on the endpoint."""

from __future__ import annotations

from appkit_runtime.fastapi import protected
from appkit_runtime.fastapi.fastapi import get_fastapi_app
from bench.apps.common import PATH, read_item

app = get_fastapi_app("bench", databases=())
app.get(PATH, dependencies=protected())(read_item)
