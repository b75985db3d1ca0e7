"""Under Django the static key table is built when the app is ready, not by the first request."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import appkit_runtime.django
from appkit_runtime.auth import get_project_token
from appkit_runtime.auth import static_keys as static_keys_module
from appkit_runtime.django.apps import AppkitRuntimeConfig
from appkit_runtime.settings import StaticKeys, get_settings


def test_ready_builds_the_table_once(monkeypatch, tmp_path) -> None:
    entries = [
        {
            "key_sha256": hashlib.sha256(f"dj-{n}".encode()).hexdigest(),
            "org_id": "o",
            "project_id": f"p{n}",
        }
        for n in range(100)
    ]
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(entries))
    monkeypatch.setenv("APPKIT_API_KEYS", str(path))
    get_settings.cache_clear()
    builds: list[int] = []
    real = static_keys_module.build_table

    def counting(found: Any) -> StaticKeys:
        builds.append(len(found))
        return real(found)

    monkeypatch.setattr(static_keys_module, "build_table", counting)

    AppkitRuntimeConfig("appkit_runtime.django", appkit_runtime.django).ready()
    assert builds == [100]
    token, _ = get_project_token(None, {}, "dj-7", None, "GET", None)
    assert token is not None and token.project_id == "p7"
    assert builds == [100]
