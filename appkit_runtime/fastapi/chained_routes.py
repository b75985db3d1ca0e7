"""Protected routes run their chain before FastAPI's dependency solver, not inside it.

As a dependency, `protected()`'s chain cost FastAPI's solver about 30 Python calls and 60
builtin calls per request on top of its own work (BENCHMARKS.md, issue 17). At start-up each
route whose first dependency is a `ProtectedChain` is served by a `ChainedHandler`: the chain,
then the handler FastAPI builds from the route's dependencies minus the chain. The route's
own dependant is left whole, so OpenAPI, the route-order check and `app.dependency_overrides`
see what was declared; while any override is set, requests take the route's declared handler,
chain and overrides resolved by FastAPI as before.

A request whose key is cached and whose project's quota lease covers it runs the chain
synchronously, from a plan of what the chain resolved for its token on the route
(`appkit_runtime.fastapi.chain_plans`), with the same answer; any other takes the chain's
async path, which plans the next one.

A route declared protected never runs without its chain: the chain is only ever taken out of
the handler a `ChainedHandler` runs after it, and `check_chained_routes` refuses start-up when
a route's chain changed after it was chained.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Coroutine, Iterator
from types import SimpleNamespace
from typing import Any

import fastapi.routing
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute, request_response
from starlette.routing import Mount
from starlette.types import ASGIApp

from appkit_runtime.errors import RouteOrderError
from appkit_runtime.fastapi.authentication import AuthDenied
from appkit_runtime.fastapi.chain import ProtectedChain
from appkit_runtime.fastapi.chain_plans import ChainPlan, ChainPlans
from appkit_runtime.fastapi.key_gate import turn_queue
from appkit_runtime.fastapi.route_order import declared_route, route_contexts
from appkit_runtime.ratelimit.decision import DECISION_STATE
from appkit_runtime.tokens import ProjectToken

Handler = Callable[[Request], Coroutine[Any, Any, Response]]

# FastAPI 0.165 builds included routes' handlers through these; without them (older
# versions include routers eagerly, as plain `APIRoute`s) routes are wrapped the same way.
_body_limit = getattr(fastapi.routing, "wrap_app_with_body_limit", None)
_route_context_var = getattr(fastapi.routing, "_effective_route_context_var", None)
_NO_OVERRIDES = SimpleNamespace(dependency_overrides={})
_UNDECIDED = (None, None)


class ChainedHandler:
    """A protected route's handler: the chain, then FastAPI's handler for the route's other
    dependencies; the route's declared handler instead while dependency overrides are set."""

    def __init__(
        self, chain: ProtectedChain, handler: Handler, declared: Handler, overrides_from: Any
    ) -> None:
        self.chain = chain
        self.handler = handler
        self.declared = declared
        self.overrides_from = overrides_from if overrides_from is not None else _NO_OVERRIDES
        self.app: ASGIApp | None = None  # the route's app, once it serves through this
        self.plans = ChainPlans(chain)

    async def __call__(self, request: Request) -> Response:
        if self.overrides_from.dependency_overrides:
            return await self.declared(request)
        chain = self.chain
        scope = request.scope
        planned = self.plans.spend(scope)
        if planned is None:
            try:
                token, fields = await chain.before_endpoint(request)
            except AuthDenied as denial:
                if denial.status_code == 401:
                    # As the key gate does for unknown keys, before routing: a flood without
                    # a key (which the gate cannot tell from a public request) waits its
                    # turns too.
                    await turn_queue().wait_turn()
                raise
            plan = None
            if scope["state"].get(DECISION_STATE, _UNDECIDED)[0] == "allowed":
                self.plans.learn(scope, token)
        else:
            plan, fields = planned
            token = plan.token
        try:
            response = await self.handler(request)
        except (RequestValidationError, HTTPException) as error:
            # Parameters or a body refused before the endpoint (422, 413) are not a job, as
            # when the chain ran in the solver, after them; an endpoint's own HTTPException is.
            if not _refused_before_endpoint(error):
                self._count(request, token, plan)
            raise
        except BaseException:
            self._count(request, token, plan)
            raise
        self._count(request, token, plan)
        # Where FastAPI puts a dependency's sub-response headers: after the endpoint's own.
        response.raw_headers.extend(fields)
        return response

    def _count(self, request: Request, token: ProjectToken, plan: ChainPlan | None) -> None:
        """Count the job, through the plan when the fast path served the request."""
        if plan is None:
            self.chain.metrics.count(request, token)
        else:
            plan.count_job(request.scope["method"])


def _refused_before_endpoint(error: Exception) -> bool:
    """Whether FastAPI raised `error` reading the request, before calling the endpoint."""
    if isinstance(error, RequestValidationError):
        return True
    return isinstance(error, HTTPException) and error.status_code == 413


def chained_handler(target: Any) -> ChainedHandler | None:
    """The `ChainedHandler` that serves `target` (a route or an included route's context)."""
    handler: ChainedHandler | None = getattr(target, "appkit_chained", None)
    return handler if handler is not None and target.app is handler.app else None


def chain_routes(app: FastAPI) -> int:
    """Give every route whose first dependency is a `ProtectedChain` a `ChainedHandler`, in
    `app`, its included routers and mounted FastAPI apps; the number of routes."""
    count = 0
    for target, original in _route_targets(app):
        if chained_handler(target) is not None:
            continue
        dependencies = target.dependant.dependencies
        chain = dependencies[0].call if dependencies else None
        if not isinstance(chain, ProtectedChain) or not _chainable(original, dependencies, chain):
            continue
        stripped = dataclasses.replace(target.dependant, dependencies=dependencies[1:])
        handler = ChainedHandler(
            chain,
            _handler_for(target, original, stripped),
            _handler_for(target, original, target.dependant),
            target.dependency_overrides_provider,
        )
        served = request_response(handler)
        if _body_limit is not None:
            served = _body_limit(served, target.max_body_size)
        target.app = handler.app = served
        target.appkit_chained = handler
        count += 1
    return count


def _chainable(original: APIRoute, dependencies: list[Any], chain: ProtectedChain) -> bool:
    """Whether the chain can leave the solver: the route's class builds FastAPI's own
    handler (a custom `route_class` may wrap what it raises), the chain is a route
    dependency, not an endpoint parameter, and nothing else on the route depends on it (a
    parameter would get it from FastAPI's per-request cache)."""
    if type(original).get_route_handler is not APIRoute.get_route_handler:
        return False
    if dependencies[0].name is not None:  # an endpoint parameter, not a route dependency
        return False
    return not any(_depends_on(sub, chain) for sub in dependencies[1:])


def _depends_on(dependant: Any, call: object) -> bool:
    return dependant.call is call or any(_depends_on(sub, call) for sub in dependant.dependencies)


def check_chained_routes(app: FastAPI) -> None:
    """Refuse start-up when a route's `ChainedRoute` runs another chain than the route now
    declares first (its dependencies changed after it was chained): its handler would then
    skip what the route declares."""
    for target, _ in _route_targets(app):
        handler = chained_handler(target)
        if handler is None:
            continue
        dependencies = target.dependant.dependencies
        if not dependencies or dependencies[0].call is not handler.chain:
            methods = ",".join(sorted(target.methods or ()))
            raise RouteOrderError(
                f"{methods} {target.path}: its dependencies changed after start-up chained "
                "it; declare routes before the app starts"
            )


def _handler_for(target: Any, original: APIRoute, dependant: Any) -> Handler:
    """FastAPI's handler for `target` (a route, or an included route's context) as if its
    dependant were `dependant`: the route builds it, so every other option is its own."""
    declared = target.dependant
    target.dependant = dependant
    token = _route_context_var.set(target) if target is not original else None
    try:
        return original.get_route_handler()
    finally:
        if token is not None:
            _route_context_var.reset(token)
        target.dependant = declared


def _route_targets(app: FastAPI) -> Iterator[tuple[Any, APIRoute]]:
    """(object whose `app` serves the route, the declared `APIRoute`) for every API route of
    `app`, its included routers (their per-inclusion contexts) and its mounted apps."""
    for context in route_contexts(app):
        route = declared_route(context)
        if isinstance(route, APIRoute):
            effective = getattr(context, "_route_context", None)
            if effective is None or _route_context_var is not None:
                yield (route if effective is None else effective), route
        elif isinstance(route, Mount) and isinstance(route.app, FastAPI):
            yield from _route_targets(route.app)
