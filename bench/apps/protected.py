"""Variants `protected` and `public`: `get_fastapi_app` with the endpoint under
`dependencies=protected()` and, on the same app, unprotected under `PUBLIC_PATH`."""

from __future__ import annotations

from appkit_runtime.fastapi import protected
from appkit_runtime.fastapi.fastapi import get_fastapi_app
from bench.apps.common import PATH, PUBLIC_PATH, read_item

app = get_fastapi_app("bench", databases=())
app.get(PATH, dependencies=protected())(read_item)
app.get(PUBLIC_PATH)(read_item)
