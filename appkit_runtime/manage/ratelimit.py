"""`ratelimit` commands: the project and organisation overrides, through the async functions.

Each action calls the very function a service would (`set_rate_limit_override` and friends)
on `get_async_redis_instance("ratelimit")`, so what the CLI shows is what the limiter sees.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from appkit_runtime.manage.parser import UsageError, endpoint, identifier, positive_int
from appkit_runtime.ratelimit import (
    RateLimitOverride,
    clear_project_rate_limit_overrides,
    delete_org_rate_limit_override,
    delete_rate_limit_override,
    get_org_rate_limit_override,
    get_rate_limit_override,
    list_org_rate_limit_overrides,
    list_rate_limit_overrides,
    set_org_rate_limit_override,
    set_rate_limit_override,
)
from appkit_runtime.redis_pools import close_redis_connections
from appkit_runtime.settings import get_async_redis_instance, get_settings

REDIS_NAME = "ratelimit"
EXIT_NOT_FOUND = 1

Call = Callable[[Any, argparse.Namespace], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class _Action:
    """One action: its help, its call, and which options it takes."""

    help: str
    call: Call
    project: bool = True
    endpoint: bool = True
    sets: bool = False
    changes: bool = False


_ACTIONS = {
    "set": _Action(
        "set a project's override on one endpoint",
        lambda r, a: set_rate_limit_override(
            r, a.org_id, a.project_id, a.endpoint, a.max_requests, a.expiry, a.ttl
        ),
        sets=True,
        changes=True,
    ),
    "get": _Action(
        "show a project's override on one endpoint",
        lambda r, a: get_rate_limit_override(r, a.org_id, a.project_id, a.endpoint),
    ),
    "delete": _Action(
        "remove a project's override on one endpoint",
        lambda r, a: delete_rate_limit_override(r, a.org_id, a.project_id, a.endpoint),
        changes=True,
    ),
    "list": _Action(
        "list a project's overrides",
        lambda r, a: list_rate_limit_overrides(r, a.org_id, a.project_id),
        endpoint=False,
    ),
    "clear": _Action(
        "remove every override of a project",
        lambda r, a: clear_project_rate_limit_overrides(r, a.org_id, a.project_id),
        endpoint=False,
        changes=True,
    ),
    "set-org": _Action(
        "set an organisation's override on one endpoint (for projects without their own)",
        lambda r, a: set_org_rate_limit_override(
            r, a.org_id, a.endpoint, a.max_requests, a.expiry, a.ttl
        ),
        project=False,
        sets=True,
        changes=True,
    ),
    "get-org": _Action(
        "show an organisation's override on one endpoint",
        lambda r, a: get_org_rate_limit_override(r, a.org_id, a.endpoint),
        project=False,
    ),
    "delete-org": _Action(
        "remove an organisation's override on one endpoint",
        lambda r, a: delete_org_rate_limit_override(r, a.org_id, a.endpoint),
        project=False,
        changes=True,
    ),
    "list-org": _Action(
        "list an organisation's overrides",
        lambda r, a: list_org_rate_limit_overrides(r, a.org_id),
        project=False,
        endpoint=False,
    ),
}


def add_parser(commands: Any) -> None:
    """Add `ratelimit <action>` with each action's options."""
    parser = commands.add_parser("ratelimit", help="rate-limit overrides")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, spec in _ACTIONS.items():
        action = actions.add_parser(name, help=spec.help, description=spec.help)
        action.add_argument("--org-id", required=True, type=identifier)
        if spec.project:
            action.add_argument("--project-id", required=True, type=identifier)
        if spec.endpoint:
            action.add_argument(
                "--endpoint", required=True, type=endpoint, help="route template, /items/{id}"
            )
        if spec.sets:
            action.add_argument("--max-requests", required=True, type=positive_int)
            action.add_argument("--expiry", required=True, type=positive_int, help="seconds")
            action.add_argument(
                "--ttl", type=positive_int, help="seconds until the override removes itself"
            )
        action.add_argument("--json", action="store_true", help="print JSON for scripts")
        if spec.changes:
            action.add_argument(
                "--yes", action="store_true", help="confirm a change when APPKIT_ENV=production"
            )
        action.set_defaults(run=run)


async def run(args: argparse.Namespace) -> int:
    """Check the environment, run the action on the `ratelimit` Redis, print its answer."""
    spec = _ACTIONS[args.action]
    settings = get_settings()
    if spec.changes and settings.env == "production" and not args.yes:
        raise UsageError(f"APPKIT_ENV=production: add --yes to run `ratelimit {args.action}`")
    url, variable = settings.redis_url_for(REDIS_NAME)
    if url.startswith("memory://"):
        raise UsageError(
            f"{variable} is memory://, a per-process emulation the service cannot see; "
            "point it at the service's Redis"
        )
    try:
        answer = await spec.call(get_async_redis_instance(REDIS_NAME), args)
    finally:
        await close_redis_connections()
    print(_render(args, answer))
    found = answer is not None
    return 0 if found or args.action not in ("get", "get-org") else EXIT_NOT_FOUND


def _render(args: argparse.Namespace, answer: Any) -> str:
    """The action's answer as JSON (`--json`) or as a line or lines for people."""
    data = _data(args, answer)
    if args.json:
        return json.dumps(data, sort_keys=True)
    whose = _whose(args)
    if args.action in ("set", "set-org"):
        expires = f", removed after {args.ttl} s" if args.ttl else ""
        return f"set {whose} {args.endpoint}: {_limit(data)}{expires}"
    if args.action in ("get", "get-org"):
        return f"{whose} {args.endpoint}: {_limit(data)}" if data else f"no override {whose}"
    if args.action in ("delete", "delete-org"):
        return f"{'deleted' if answer else 'no override to delete'} {whose} {args.endpoint}"
    if args.action == "clear":
        return f"removed {answer} override(s) {whose}"
    lines = [f"{item['endpoint']}: {_limit(item)}" for item in data]
    return "\n".join(lines) if lines else f"no overrides {whose}"


def _data(args: argparse.Namespace, answer: Any) -> Any:
    if args.action in ("set", "set-org"):
        limit = RateLimitOverride(args.endpoint, args.max_requests, args.expiry)
        return {**_override(limit), "ttl": args.ttl}
    if args.action in ("delete", "delete-org"):
        return {"deleted": answer}
    if args.action == "clear":
        return {"removed": answer}
    if isinstance(answer, list):
        return [_override(item) for item in answer]
    return None if answer is None else _override(answer)


def _override(override: RateLimitOverride) -> dict[str, Any]:
    fields = asdict(override)
    return {"endpoint": fields.pop("path"), **fields}


def _limit(data: dict[str, Any]) -> str:
    return f"{data['max_requests']} requests per {data['expiry']} s"


def _whose(args: argparse.Namespace) -> str:
    project = getattr(args, "project_id", None)
    if project is None:
        return f"for organisation {args.org_id}"
    return f"for project {args.org_id}/{project}"
