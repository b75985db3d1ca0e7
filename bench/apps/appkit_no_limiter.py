"""Analysis variant `auth-metrics`: `get_fastapi_app` with AuthenticateKey and AddJobToMetrics
but no limiter, i.e. the protected chain without its Redis round trip."""

from __future__ import annotations

from fastapi import Depends

from appkit_runtime.fastapi import AddJobToMetrics, AuthenticateKey
from appkit_runtime.fastapi.fastapi import get_fastapi_app
from bench.apps.common import PATH, read_item

app = get_fastapi_app("bench", databases=())
app.get(PATH, dependencies=[Depends(AuthenticateKey()), Depends(AddJobToMetrics())])(read_item)
