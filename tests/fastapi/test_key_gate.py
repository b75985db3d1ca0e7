"""`UnknownKeyGate`: keys not known valid wait one loop turn each; everything else goes on."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from fastapi import Depends, FastAPI

from appkit_runtime.auth import static_keys
from appkit_runtime.auth.cache import LOCAL
from appkit_runtime.auth.credentials import key_digest
from appkit_runtime.auth.resolve import static_answer
from appkit_runtime.fastapi import AuthenticateKey, key_gate, protected
from appkit_runtime.fastapi.fastapi import get_fastapi_app
from appkit_runtime.fastapi.key_gate import TurnQueue, UnknownKeyGate, waits_turn
from appkit_runtime.settings import get_settings
from appkit_runtime.tokens import ProjectToken
from tests.fastapi.test_fastapi import client_for


@pytest.fixture(autouse=True)
def sqlite_database(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("APPKIT_DATABASE_URL", f"sqlite:///{tmp_path}/app.db")


def scope(*headers: tuple[str, str], path: str = "/items/1") -> dict:
    return {
        "type": "http",
        "path": path,
        "headers": [(name.lower().encode(), value.encode()) for name, value in headers],
    }


async def nothing(scope, receive, send) -> None:
    """The app behind the gate: answers nothing, so only the gate's own wait is seen."""


@pytest.fixture
def turns_taken(monkeypatch: pytest.MonkeyPatch) -> list[None]:
    """One entry per request that waited for its turn."""
    taken: list[None] = []
    wait_turn = TurnQueue.wait_turn

    async def counted(self: TurnQueue) -> None:
        taken.append(None)
        await wait_turn(self)

    monkeypatch.setattr(TurnQueue, "wait_turn", counted)
    return taken


async def waited(taken: list[None], scope: dict) -> bool:
    before = len(taken)
    await UnknownKeyGate(nothing)(scope, None, None)
    return len(taken) > before


def test_a_key_that_opens_nothing_is_told_apart(api_key) -> None:
    valid = api_key("acme", "orders")
    assert not waits_turn(scope())  # no key: public routes are asked without one
    assert not waits_turn(scope(("X-API-Key", valid)))
    assert not waits_turn(scope(("Authorization", f"Bearer {valid}")))
    assert waits_turn(scope(("X-API-Key", "ak_test_unknown_0123456789")))
    assert waits_turn(scope(("Authorization", "Bearer ak_test_unknown_0123456789")))
    assert waits_turn(scope(("X-API-Key", "has space")))  # malformed
    assert waits_turn(scope(("X-API-Key", "x" * 513)))  # too long to hash
    assert waits_turn(scope(("Authorization", "Bearer ")))  # empty


def test_a_key_cached_valid_is_never_gated(monkeypatch: pytest.MonkeyPatch, api_key) -> None:
    key = api_key("acme", "orders")
    assert static_answer(key_digest(key)) is not None  # as its first request keeps it
    assert LOCAL.get(key_digest(key)) is not None
    # Served from the in-process cache, the table is not asked again.
    monkeypatch.setattr(static_keys, "lookup", lambda digest: None)
    assert not waits_turn(scope(("X-API-Key", key)))
    assert waits_turn(scope(("X-API-Key", key + "x")))


async def test_the_gate_holds_only_static_keys_that_open_nothing(turns_taken, api_key) -> None:
    valid = api_key("acme", "orders")
    unknown = ("X-API-Key", "ak_test_unknown_0123456789")
    assert await waited(turns_taken, scope(unknown))
    assert not await waited(turns_taken, scope(("X-API-Key", valid)))
    assert not await waited(turns_taken, scope())
    assert not await waited(turns_taken, scope(unknown, path="/healthz"))
    assert not await waited(turns_taken, {"type": "websocket", "path": "/ws", "headers": []})
    assert len(turns_taken) == 1


async def test_other_backends_gate_every_key_not_cached_valid(
    turns_taken, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The `http` backend cannot tell a junk key from a new valid one without Redis or the
    # authority: every key this process has not seen valid waits one turn.
    monkeypatch.setenv("APPKIT_AUTH_BACKEND", "http")
    monkeypatch.setenv("APPKIT_AUTH_URL", "http://127.0.0.1:9/")
    get_settings.cache_clear()
    seen, rejected = "ak_test_seen_0123456789", "ak_test_rejected_0123456789"
    assert await waited(turns_taken, scope(("X-API-Key", seen)))
    LOCAL.put(key_digest(seen), ProjectToken("acme", "orders"), 60, max_invalid=10)
    assert not await waited(turns_taken, scope(("X-API-Key", seen)))
    LOCAL.put(key_digest(rejected), None, 60, max_invalid=10)
    assert await waited(turns_taken, scope(("X-API-Key", rejected)))  # cached invalid
    assert not await waited(turns_taken, scope())
    assert len(turns_taken) == 2
    # Its entry expired (APPKIT_AUTH_CACHE_TTL) and was swept away by other keys' writes:
    # still a key seen valid, looked up at once.
    LOCAL.valid.put(key_digest(seen), ProjectToken("acme", "orders"), 1e-6)
    await asyncio.sleep(0.001)
    for n in range(20):
        LOCAL.put(key_digest(f"ak_test_other_{n:04d}"), ProjectToken("a", "b"), 60, max_invalid=10)
    assert LOCAL.get(key_digest(seen)) is None
    assert not await waited(turns_taken, scope(("X-API-Key", seen)))
    assert len(turns_taken) == 2
    LOCAL.put(key_digest(seen), None, 60, max_invalid=10)  # found invalid since: held again
    assert await waited(turns_taken, scope(("X-API-Key", seen)))


async def test_waiters_go_on_one_per_loop_turn_in_order() -> None:
    queue = TurnQueue(asyncio.get_running_loop())
    events: list[str] = []

    async def waiter(name: str) -> None:
        await queue.wait_turn()
        events.append(name)

    async def ticker() -> None:
        # Something else ready in every loop turn, as a valid key's request would be.
        while len(events) < 20 and sum(e != "tick" for e in events) < 3:
            events.append("tick")
            await asyncio.sleep(0)

    waiters = [asyncio.create_task(waiter(name)) for name in ("a", "b", "c", "d")]
    waiters[1].cancel()  # a request gone while it waited gives its turn on
    await asyncio.gather(ticker(), *waiters, return_exceptions=True)

    order = [e for e in events if e != "tick"]
    assert order == ["a", "c", "d"]
    positions = [events.index(name) for name in order]
    # At least one other turn's work between two waiters: never two in one turn.
    assert all(later - earlier >= 2 for earlier, later in itertools.pairwise(positions))
    assert len(queue) == 0


def flood_app() -> FastAPI:
    app = get_fastapi_app("gate-test")

    @app.get("/items/{item_id}", dependencies=protected())
    async def read_item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    # The key alone, no limiter: a cached key's request then awaits no I/O (a Redis round
    # trip would let the whole flood by while it waits, whatever the order of the loop).
    @app.get("/keyed/{item_id}", dependencies=[Depends(AuthenticateKey())])
    async def read_keyed(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    return app


@pytest.mark.usefixtures("real_redis")
async def test_a_valid_key_is_answered_before_a_flood_sent_ahead_of_it(api_key) -> None:
    valid = api_key("acme", "orders")
    async with client_for(flood_app()) as client:
        assert (await client.get("/keyed/0", headers={"X-API-Key": valid})).status_code == 200
        done: list[str] = []

        async def ask(key: str, name: str) -> int:
            answer = await client.get("/keyed/1", headers={"X-API-Key": key})
            done.append(name)
            return answer.status_code

        flood = [ask(f"ak_test_random_{n:04d}", "flood") for n in range(40)]
        statuses = await asyncio.gather(*flood, ask(valid, "valid"))

    assert statuses == [401] * 40 + [200]
    # Sent last, yet answered before most of the flood: the flood waits its turns.
    assert done.index("valid") < 5, done.index("valid")


@pytest.mark.usefixtures("real_redis")
async def test_gated_answers_are_the_ungated_answers_byte_for_byte(api_key) -> None:
    valid = api_key("acme", "orders")
    asked = {
        "unknown": {"X-API-Key": "ak_test_unknown_0123456789"},
        "malformed": {"X-API-Key": "has space"},
        "too-long": {"Authorization": "Bearer " + "x" * 600},
        "missing": {},
        "valid": {"X-API-Key": valid},
    }

    async def answers(app: FastAPI) -> dict[str, tuple]:
        got = {}
        async with client_for(app) as client:
            for name, headers in asked.items():
                answer = await client.get("/items/3", headers={**headers, "X-Request-ID": name})
                kept = [(k, v) for k, v in answer.headers.multi_items() if k != "ratelimit"]
                got[name] = (answer.status_code, kept, answer.content)
        return got

    gated = flood_app()
    ungated = flood_app()
    ungated.user_middleware = [m for m in ungated.user_middleware if m.cls is not UnknownKeyGate]
    assert any(m.cls is UnknownKeyGate for m in gated.user_middleware)
    assert await answers(gated) == await answers(ungated)


def test_the_gate_is_the_outermost_middleware() -> None:
    app = get_fastapi_app("gate-order")
    # Starlette runs the last added first: nothing is done for a gated request before it.
    assert app.user_middleware[0].cls is key_gate.UnknownKeyGate


async def test_authentication_reuses_the_digest_the_gate_computed(api_key, monkeypatch) -> None:
    from appkit_runtime.auth import credentials
    from appkit_runtime.fastapi import authentication, key_gate

    hashed: list[str] = []
    real = credentials.key_digest

    def counting(key: str) -> bytes:
        hashed.append(key)
        return real(key)

    monkeypatch.setattr(key_gate, "key_digest", counting)
    monkeypatch.setattr(authentication, "key_digest", counting)
    key = api_key("acme", "digest-once")
    app = get_fastapi_app("digest-once")

    @app.get("/once", dependencies=protected())
    async def once() -> str:
        return "ok"

    async with client_for(app) as client:
        assert (await client.get("/once", headers={"X-API-Key": key})).status_code == 200
    assert hashed == [key]


@pytest.mark.usefixtures("real_redis")
async def test_a_request_without_a_key_waits_its_turn_at_a_protected_route(
    turns_taken, api_key
) -> None:
    # The gate lets keyless requests by (public routes get them); the protected route's
    # 401 then waits a turn, so a keyless flood cannot skip the queue a junk-key flood waits in.
    valid = api_key("acme", "orders")
    async with client_for(flood_app()) as client:
        assert (await client.get("/items/1")).status_code == 401
        assert len(turns_taken) == 1
        assert (await client.get("/items/1", headers={"X-API-Key": valid})).status_code == 200
        assert len(turns_taken) == 1
        assert (await client.get("/items/1", headers={"X-API-Key": "x y"})).status_code == 401
        assert len(turns_taken) == 3  # at the gate (malformed), then at the route
