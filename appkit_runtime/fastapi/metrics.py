"""`AddJobToMetrics`: the third step of the protected chain, counting the request as a job."""

from __future__ import annotations

from fastapi import Request

from appkit_runtime import usage
from appkit_runtime.errors import RouteOrderError
from appkit_runtime.fastapi.route_template import route_template
from appkit_runtime.tokens import ProjectToken


class AddJobToMetrics:
    """Count the request for its project (by product and kind) and in Prometheus.

    Costs no Redis call: counts stay in memory until the runtime's flusher sends them.
    `product` defaults to the token's product; both default to `"default"`.
    """

    appkit_chain_role = "metrics"

    def __init__(self, product: str | None = None, kind: str | None = None) -> None:
        self.product = product
        self.kind = kind

    async def __call__(self, request: Request) -> None:
        token = getattr(request.state, "project_token", None)
        if token is None:
            route = route_template(request.scope)
            raise RouteOrderError(
                f"AddJobToMetrics on {request.method} {route or request.url.path} found no "
                "project token: put AuthenticateKey before it (dependencies=protected())"
            )
        self.count(request, token)

    def count(self, request: Request, token: ProjectToken) -> None:
        """Count this request for `token` (the protected chain passes the token it made)."""
        route = route_template(request.scope)
        usage.count_job(token, self.product, self.kind, route, request.scope["method"])

    def __repr__(self) -> str:
        return f"AddJobToMetrics(product={self.product!r}, kind={self.kind!r})"
