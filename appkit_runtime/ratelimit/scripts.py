"""The Lua scripts, read once from the package's `lua/` folder."""

from __future__ import annotations

from importlib.resources import files


def _read(name: str) -> str:
    return files("appkit_runtime").joinpath("lua", name).read_text(encoding="utf-8")


PROJECT_RATE_LIMITER_LUA = _read("project_rate_limiter.lua")
PROJECT_RATE_LEASE_LUA = _read("project_rate_lease.lua")
OVERRIDE_SET_LUA = _read("override_set.lua")
OVERRIDE_DELETE_LUA = _read("override_delete.lua")
ORG_OVERRIDES_READ_LUA = _read("org_overrides_read.lua")
