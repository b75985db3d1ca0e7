"""The start-up check that every rate limiter and metrics dependency runs after auth."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, APIWebSocketRoute
from starlette.routing import Mount

from appkit_runtime.errors import RouteOrderError


def chain_roles(dependant: Dependant) -> Iterator[str]:
    """The chain roles ("auth", "ratelimit", "metrics") in the order FastAPI resolves them.

    Sub-dependencies resolve before the dependency that needs them, so a depth-first,
    children-first walk gives the run order.
    """
    for sub in dependant.dependencies:
        yield from chain_roles(sub)
        role = getattr(sub.call, "appkit_chain_role", None)
        if role is not None:
            yield from role if isinstance(role, tuple) else (role,)


def api_routes(app: FastAPI) -> Iterator[Any]:
    """Every API route with its effective path and dependencies, included routers' too.

    FastAPI 0.165 and later include routers lazily: `app.routes` then holds one entry per
    included router, and only `iter_route_contexts` shows the routes inside with the
    router-level dependencies applied.
    """
    for context in route_contexts(app):
        if isinstance(declared_route(context), APIRoute):
            yield context


def route_contexts(app: FastAPI) -> Iterator[Any]:
    """Every route of `app` with its effective path and dependencies; before FastAPI 0.165,
    which includes routers eagerly, the routes themselves."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:
        yield from app.routes
        return
    yield from iter_route_contexts(app.routes)


def declared_route(context: Any) -> Any:
    """The route as declared, behind a route context (FastAPI 0.165 and later) or not."""
    return getattr(context, "original_route", context)


def route_order_problems(app: FastAPI) -> list[str]:
    """One line per route whose limiter or metrics runs without authentication before it, or
    that puts the chain on a websocket; mounted FastAPI apps' routes included."""
    problems = []
    for route in _routes_and_mounted(app):
        methods = ",".join(sorted(getattr(route, "methods", None) or ()))
        roles = list(chain_roles(route.dependant))
        if isinstance(declared_route(route), APIWebSocketRoute):
            if roles:
                problems.append(
                    f"WEBSOCKET {route.path}: the protected chain is for HTTP routes; "
                    "authenticate a websocket in its endpoint"
                )
            continue
        authenticated = False
        for role in roles:
            if role == "auth":
                authenticated = True
            elif not authenticated:
                problems.append(
                    f"{methods} {route.path}: {_role_names[role]} runs without AuthenticateKey "
                    "before it; use dependencies=protected()"
                )
                break
    return problems


def _routes_and_mounted(app: FastAPI) -> Iterator[Any]:
    """`api_routes(app)` and websocket routes, then those of every FastAPI app mounted on it
    (its own lifespan, with its own check, never runs when mounted)."""
    for context in route_contexts(app):
        route = declared_route(context)
        if isinstance(route, APIRoute | APIWebSocketRoute):
            yield context
        elif isinstance(route, Mount) and isinstance(route.app, FastAPI):
            yield from _routes_and_mounted(route.app)


def check_route_order(app: FastAPI) -> None:
    """Raise `RouteOrderError` naming the first mis-ordered route (all of them are listed)."""
    problems = route_order_problems(app)
    if problems:
        raise RouteOrderError("; ".join(problems))


_role_names: dict[str, Any] = {"ratelimit": "ProjectRateLimiter", "metrics": "AddJobToMetrics"}
