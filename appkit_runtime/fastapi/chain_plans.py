"""The protected chain's synchronous fast path: a cached key and a lease that covers it.

Most protected requests present a key this process has cached and are covered by the quota
lease it holds. For them, everything the chain resolves but the permits is the same on every
request of one token on one route: the authorization, the rate-limit keys, the limit with
its overrides, the Redis client, the header style, the usage labels. A `ChainPlan` keeps
those from a request the chain's async path served, for as long as that path would resolve
them the same way: same settings, loop and client, the same copy of the organisation
overrides still fresh, no override expired. A request then costs a key-cache lookup, a few
checks and the lease spent in place, with no coroutine made. On any miss (no cached key or
plan, no lease, a lease spent or ended, a lease call in flight, an override copy to read)
the request takes the async path, unchanged, which then plans the next one.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from time import monotonic
from typing import Any

from starlette.types import Scope

from appkit_runtime import usage
from appkit_runtime.auth.cache import LOCAL
from appkit_runtime.auth.credentials import MAX_KEY_LENGTH, PRESENTED_KEY, key_digest, presented_key
from appkit_runtime.fastapi.authentication import FastAPIAuthenticateBase
from appkit_runtime.fastapi.chain import ProtectedChain
from appkit_runtime.fastapi.metrics import AddJobToMetrics
from appkit_runtime.fastapi.ratelimit import REDIS_NAME, ProjectRateLimiter
from appkit_runtime.fastapi.route_template import route_template
from appkit_runtime.job_counts import JOB_COUNTS
from appkit_runtime.ratelimit.decision import DECISION_STATE
from appkit_runtime.ratelimit.headers import raw_header_fields
from appkit_runtime.ratelimit.keys import rate_limit_keys
from appkit_runtime.ratelimit.leases import LeaseTable, lease_table_for
from appkit_runtime.ratelimit.org_cache import ORG_OVERRIDES, Snapshot
from appkit_runtime.ratelimit.results import remaining_requests, reset_seconds
from appkit_runtime.ratelimit.storage import async_storage_for
from appkit_runtime.redis_pools import async_client_entry
from appkit_runtime.settings import RateLimit, Settings, get_settings
from appkit_runtime.tokens import ProjectToken

# Plans kept per route; past this many (keys churning) they are dropped and made again. A
# plan holds its token, loop and client: bounded here, and gone with the app.
MAX_PLANS = 4096

Fields = list[tuple[bytes, bytes]]


@dataclass(slots=True, eq=False)
class ChainPlan:
    """What the chain resolved for one token on one route, and while it holds."""

    token: ProjectToken
    route: str
    settings: Settings
    loop: asyncio.AbstractEventLoop
    client: Any
    clients: dict[Any, Any]  # the loop's clients: the kept one must still be in it
    client_key: str
    table: LeaseTable
    counter_key: str
    limit: RateLimit  # after overrides, as the lease table is asked with it
    cost: int
    snapshot: Snapshot  # the organisation overrides' copy the limit was resolved from
    until: float  # when the organisation override it found expires (monotonic)
    style: str
    job_labels: tuple[str, str]  # service and route; the method is the request's
    usage_cell: tuple[str, str, str, str]  # org, project, product, kind

    def count_job(self, method: str) -> None:
        """`AddJobToMetrics.count` with the labels resolved when the plan was made."""
        JOB_COUNTS.add((*self.job_labels, method))
        usage.usage_counts.add(*self.usage_cell)


class ChainPlans:
    """One route's plans, by token object, and the fast path that uses them."""

    def __init__(self, chain: ProtectedChain) -> None:
        self.chain = chain
        self._plans: dict[int, ChainPlan] = {}

    def spend(self, scope: Scope) -> tuple[ChainPlan, Fields] | None:
        """Authenticate and limit the request as the chain's async path would, when its key
        is cached, its token planned and its lease covers it: the plan and the response's
        rate-limit fields (the token and decision left on the state); else None, with
        nothing changed but the key read into the scope (`PRESENTED_KEY`)."""
        presented = scope.get(PRESENTED_KEY)
        if presented is not None:
            digest = presented[1]
        else:
            key = presented_key(scope["headers"])
            if key is None or not 0 < len(key) <= MAX_KEY_LENGTH:
                return None
            digest = key_digest(key)
            scope[PRESENTED_KEY] = (key, digest)  # read once, by authentication too
        entry = LOCAL.valid.get(digest)
        if entry is None:
            return None
        token = entry[0]
        plan = self._plans.get(id(token))
        # The plan holds its token, so a token with the same id is the same object.
        if plan is None or plan.token is not token:
            return None
        # Only under a mount can one route's template differ between requests.
        if "app_root_path" in scope and route_template(scope) != plan.route:
            return None
        if (
            get_settings() is not plan.settings
            or asyncio.get_running_loop() is not plan.loop
            or plan.clients.get(plan.client_key) is not plan.client
        ):
            return None
        now = monotonic()
        if now >= plan.until or not ORG_OVERRIDES.answers_from(plan.snapshot, now):
            return None
        lease = plan.table.usable_lease(plan.counter_key, plan.limit, plan.cost, now)
        if lease is None:
            return None
        lease.take(plan.cost)
        remaining = remaining_requests(lease.max_requests, lease.reported)
        reset = reset_seconds(lease.ttl_ms(now))
        state = scope.setdefault("state", {})
        state["project_token"] = token
        state[DECISION_STATE] = ("allowed", remaining)
        return plan, raw_header_fields(
            plan.style, lease.max_requests, lease.expiry, remaining, reset
        )

    def learn(self, scope: Scope, token: ProjectToken) -> None:
        """Plan `token` on this route after the async path allowed its request, resolving
        what that path resolved; nothing when the chain's steps are not the built-in ones
        (a subclass's own steps always run) or the override copy would need a read."""
        chain = self.chain
        if not _built_in(chain):
            return
        settings = get_settings()
        route = route_template(scope)
        fixed = ORG_OVERRIDES.fixed_limit(token.org_id, route, settings)
        if fixed is None:
            return
        snapshot, override, until = fixed
        limiter, metrics = chain.limiter, chain.metrics
        limit = token.rate_limit if token.rate_limit is not None else limiter.limit()
        client, clients, client_key = async_client_entry(REDIS_NAME, settings)
        plans = self._plans
        if len(plans) >= MAX_PLANS:
            plans.clear()
        plans[id(token)] = ChainPlan(
            token=token,
            route=route,
            settings=settings,
            loop=asyncio.get_running_loop(),
            client=client,
            clients=clients,
            client_key=client_key,
            table=lease_table_for(async_storage_for(client)),
            counter_key=rate_limit_keys(token.org_id, token.project_id, route, settings=settings)[
                0
            ],
            limit=override or limit,
            cost=limiter.cost,
            snapshot=snapshot,
            until=until,
            style=settings.ratelimit_headers,
            job_labels=(settings.service_name, route),
            usage_cell=(
                token.org_id,
                token.project_id,
                metrics.product or token.product or usage.DEFAULT_NAME,
                metrics.kind or usage.DEFAULT_NAME,
            ),
        )


def _built_in(chain: ProtectedChain) -> bool:
    """Whether the chain's steps are the ones the fast path stands for: no subclass or
    instance replaces authentication, the limiter's decision or the job count."""
    overridden = {"before_endpoint", "authenticate"} & vars(chain).keys()
    return (
        not overridden
        and type(chain).before_endpoint is ProtectedChain.before_endpoint
        and type(chain).authenticate is FastAPIAuthenticateBase.authenticate
        and type(chain.limiter).header_fields is ProjectRateLimiter.header_fields
        and "header_fields" not in vars(chain.limiter)
        and type(chain.metrics).count is AddJobToMetrics.count
        and "count" not in vars(chain.metrics)
    )
