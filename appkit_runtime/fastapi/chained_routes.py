"""Protected routes run their chain before FastAPI's dependency solver, not inside it.

As a dependency, `protected()`'s chain cost FastAPI's solver about 30 Python calls and 60
builtin calls per request on top of its own work (BENCHMARKS.md, issue 17). At start-up each
route whose first dependency is a `ProtectedChain` gets a second handler, built by FastAPI
from the route's dependencies minus the chain, behind an ASGI step that runs the chain first.
The route's own dependant is left whole, so OpenAPI, the route-order check and
`app.dependency_overrides` see what was declared; while any override is set, requests take
the route's original handler, chain and overrides resolved by FastAPI as before.

A route declared protected never runs without its chain: the chain is only ever taken out of
the handler that this module wraps, and `check_chained_routes` refuses start-up otherwise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import fastapi.routing
from fastapi import FastAPI, Request, Response
from fastapi.routing import APIRoute, iter_route_contexts, request_response
from starlette.routing import Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from appkit_runtime.errors import RouteOrderError
from appkit_runtime.fastapi.chain import ProtectedChain

Handler = Callable[[Request], Coroutine[Any, Any, Response]]

# FastAPI 0.165 builds included routes' handlers through these; without them (older
# versions include routers eagerly, as plain `APIRoute`s) routes are wrapped the same way.
_body_limit = getattr(fastapi.routing, "wrap_app_with_body_limit", None)
_route_context_var = getattr(fastapi.routing, "_effective_route_context_var", None)


class ChainedRoute:
    """The ASGI app of a protected route: the chain first, then FastAPI's handler without it."""

    def __init__(
        self, chain: ProtectedChain, fast: ASGIApp, declared: ASGIApp, overrides_from: Any
    ) -> None:
        self.chain = chain
        self.fast = fast
        self.declared = declared
        self.overrides_from = overrides_from

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if getattr(self.overrides_from, "dependency_overrides", None):
            await self.declared(scope, receive, send)
        else:
            await self.fast(scope, receive, send)


def chain_first(chain: ProtectedChain, handler: Handler) -> Handler:
    """`handler` (FastAPI's, solving the route's other dependencies) after `chain`."""

    async def run(request: Request) -> Response:
        fields = await chain.before_endpoint(request)
        response = await handler(request)
        # Where FastAPI puts a dependency's sub-response headers: after the endpoint's own.
        response.raw_headers.extend(fields)
        return response

    return run


def chain_routes(app: FastAPI) -> int:
    """Give every route whose first dependency is a `ProtectedChain` a `ChainedRoute` app,
    in `app`, its included routers and mounted FastAPI apps; the number of routes."""
    count = 0
    for target, original in _route_targets(app):
        if isinstance(target.app, ChainedRoute):
            continue
        dependencies = target.dependant.dependencies
        chain = dependencies[0].call if dependencies else None
        if not isinstance(chain, ProtectedChain):
            continue
        stripped = dataclasses.replace(target.dependant, dependencies=dependencies[1:])
        handler = _handler_for(target, original, stripped)
        fast = request_response(chain_first(chain, handler))
        if _body_limit is not None:
            fast = _body_limit(fast, target.max_body_size)
        overrides_from = target.dependency_overrides_provider
        target.app = ChainedRoute(chain, fast, target.app, overrides_from)
        count += 1
    return count


def check_chained_routes(app: FastAPI) -> None:
    """Refuse start-up when a route's `ChainedRoute` runs another chain than the route now
    declares first (its dependencies changed after it was chained): its handler would then
    skip what the route declares."""
    for target, _ in _route_targets(app):
        served_by = target.app
        if not isinstance(served_by, ChainedRoute):
            continue
        dependencies = target.dependant.dependencies
        if not dependencies or dependencies[0].call is not served_by.chain:
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
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute):
            effective = getattr(context, "_route_context", None)
            if effective is None or _route_context_var is not None:
                yield (route if effective is None else effective), route
        elif isinstance(route, Mount) and isinstance(route.app, FastAPI):
            yield from _route_targets(route.app)
