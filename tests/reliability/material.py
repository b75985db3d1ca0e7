"""Key material the reliability tests hand out, and the check that it shows up nowhere."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable

# Every key issued by the suite in this process; searched for in logs, bodies and key names.
ISSUED: set[str] = set()


def new_key(label: str = "rk") -> str:
    """A fresh key, remembered so that any later leak of it is caught."""
    key = f"{label}_{secrets.token_urlsafe(24)}"
    ISSUED.add(key)
    return key


def remember(key: str) -> str:
    """Treat a hand-made (hostile) key as material too; keys under 16 characters are too
    common as substrings to search for."""
    if len(key) >= 16:
        ISSUED.add(key)
    return key


def leaks(texts: Iterable[str]) -> list[str]:
    """The issued keys (their first 12 characters, never the key) found in `texts`."""
    found = []
    for text in texts:
        for key in ISSUED:
            if key in text:
                found.append(key[:12] + "…")
    return found


def static_keys(*entries: tuple[str, str, str, str | None]) -> str:
    """`APPKIT_API_KEYS` JSON for `(key, org_id, project_id, rate_limit)` entries."""
    return json.dumps(
        [
            {"key": key, "org_id": org, "project_id": project, "rate_limit": limit}
            for key, org, project, limit in entries
        ]
    )
