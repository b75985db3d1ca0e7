"""The start-up check that every rate limiter and metrics dependency runs after auth."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

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
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:
        yield from (route for route in app.routes if isinstance(route, APIRoute))
        return
    for context in iter_route_contexts(app.routes):
        if isinstance(context.original_route, APIRoute):
            yield context


def route_order_problems(app: FastAPI) -> list[str]:
    """One line per route whose limiter or metrics runs without authentication before it."""
    problems = []
    for route in api_routes(app):
        authenticated = False
        for role in chain_roles(route.dependant):
            if role == "auth":
                authenticated = True
            elif not authenticated:
                methods = ",".join(sorted(route.methods or ()))
                problems.append(
                    f"{methods} {route.path}: {_role_names[role]} runs without AuthenticateKey "
                    "before it; use dependencies=protected()"
                )
                break
    return problems


def check_route_order(app: FastAPI) -> None:
    """Raise `RouteOrderError` naming the first mis-ordered route (all of them are listed)."""
    problems = route_order_problems(app)
    if problems:
        raise RouteOrderError("; ".join(problems))


_role_names: dict[str, Any] = {"ratelimit": "ProjectRateLimiter", "metrics": "AddJobToMetrics"}
