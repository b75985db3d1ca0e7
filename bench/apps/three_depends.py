"""Variant `three-depends`: the seed's form, the chain as three `Depends` on the route."""

from __future__ import annotations

from fastapi import Depends

from appkit_runtime.fastapi import AddJobToMetrics, AuthenticateKey, ProjectRateLimiter
from appkit_runtime.fastapi.fastapi import get_fastapi_app
from bench.apps.common import PATH, read_item

app = get_fastapi_app("bench", databases=())
chain = [Depends(AuthenticateKey()), Depends(ProjectRateLimiter()), Depends(AddJobToMetrics())]
app.get(PATH, dependencies=chain)(read_item)
