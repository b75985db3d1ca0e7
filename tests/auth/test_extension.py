"""Teams' own authorities, and the reference's threadpool snippet after the rename."""

from __future__ import annotations

import threading
from collections.abc import Mapping

from fastapi.concurrency import run_in_threadpool

from appkit_runtime.fastapi.authentication import AuthenticateKey, FastAPIAuthenticateBase
from appkit_runtime.tokens import ProjectToken


class TeamAuthenticate(FastAPIAuthenticateBase):
    """The README's example: an authority that reads keys from a team's own store."""

    store = {"team-key-1": ProjectToken("team", "tools", scopes=frozenset({"admin"}))}

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.threads: list[int] = []
        self.seen: list[tuple[object, ...]] = []

    def get_project_token(
        self,
        current_product: str | None,
        headers: Mapping[str, str],
        key_token: str,
        kind: str | None,
        request_method: str,
        port: int | None,
    ) -> tuple[ProjectToken | None, float]:
        self.threads.append(threading.get_ident())
        self.seen.append((current_product, headers.get("host"), kind, request_method, port))
        return self.store.get(key_token), 60.0


async def test_a_subclass_authority_is_called_in_a_worker_thread(client_for) -> None:
    auth = TeamAuthenticate(product="tools", scopes=["admin"], kind="report")
    client = client_for(auth)

    ok = await client.get("/items", headers={"X-API-Key": "team-key-1"})
    bad = await client.get("/items", headers={"X-API-Key": "team-key-2"})

    assert ok.json() == {"org_id": "team", "project_id": "tools", "on_state": True}
    assert bad.status_code == 401
    assert auth.seen == [("tools", "test", "report", "GET", 80)] * 2
    assert len(auth.threads) == 2 and threading.get_ident() not in auth.threads


async def test_reference_threadpool_snippet() -> None:
    self = TeamAuthenticate()
    current_product, headers, key_token = "tools", {"host": "api"}, "team-key-1"
    kind, request_method, port = None, "GET", 443

    # Inside FastAPIAuthenticateBase.authenticate()
    project_token, _ = await run_in_threadpool(
        self.get_project_token,
        current_product,
        headers,
        key_token,
        kind,
        request_method,
        port,
    )

    assert project_token == ProjectToken("team", "tools", scopes=frozenset({"admin"}))
    assert self.seen == [("tools", "api", None, "GET", 443)]


def test_authenticate_key_is_the_base_with_the_configured_authority() -> None:
    auth = AuthenticateKey(product="search", scopes=["read", "read"])
    assert isinstance(auth, FastAPIAuthenticateBase)
    assert (auth.product, auth.scopes, auth.kind) == ("search", frozenset({"read"}), None)
