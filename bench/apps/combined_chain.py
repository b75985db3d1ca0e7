"""Analysis variant `combined`: the same three steps in the same order, run by one dependency
instead of three (a prototype of "one combined dependency behind protected()")."""

from __future__ import annotations

from fastapi import Depends, Request, Response

from appkit_runtime.fastapi import AddJobToMetrics, AuthenticateKey, ProjectRateLimiter
from appkit_runtime.fastapi.fastapi import get_fastapi_app
from bench.apps.common import PATH, read_item


class ProtectedChain(AuthenticateKey):
    """Authenticate, limit, count: one FastAPI dependency, the order fixed in its body."""

    appkit_chain_role = ("auth", "ratelimit", "metrics")

    def __init__(self) -> None:
        super().__init__()
        self.limiter = ProjectRateLimiter()
        self.metrics = AddJobToMetrics()

    async def __call__(self, request: Request, response: Response) -> None:  # type: ignore[override]
        request.state.project_token = await self.authenticate(request)
        await self.limiter(request, response)
        await self.metrics(request)


app = get_fastapi_app("bench", databases=())
app.get(PATH, dependencies=[Depends(ProtectedChain())])(read_item)
