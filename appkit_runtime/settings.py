"""Settings read once from `APPKIT_*` variables, and the connection getters built on them.

`get_settings()` turns any bad value into a `ConfigurationError` whose one-line message
names the variable, so a misconfigured service stops at start-up instead of mid-request.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Mapping
from ipaddress import ip_network
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NamedTuple

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import core_schema
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from appkit_runtime.errors import ConfigurationError
from appkit_runtime.urls import (
    DatabaseURL,
    async_database_url,
    check_authority_url,
    check_database_url,
    check_redis_url,
)

if TYPE_CHECKING:
    import redis as sync_redis
    import redis.asyncio as async_redis

    from appkit_runtime.tokens import ProjectToken

ENV_PREFIX = "APPKIT_"
# Values of these variables may hold credentials: never echo them in an error.
SECRET_FIELDS = {"api_keys", "database_url", "redis_url", "auth_url"}

# Org and project ids become parts of Redis key names; longer ones are refused everywhere.
MAX_ID_LENGTH = 256
# They are written into log lines too, where a line break or other control character in one
# would forge or hide lines; refused everywhere as well.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# The longest an authority's answer may be cached (a day); longer ttls are clamped to it.
MAX_AUTH_TTL_SECONDS = 86_400.0

# ASCII digits, at most 10 (2**31 - 1 has 10): `\d` takes any script's digits, and int() stops
# past 4300 digits with its own message.
_RATE_LIMIT = re.compile(r"^\s*([0-9]{1,10})\s*/\s*([0-9]{1,10})\s*$")


class RateLimit(NamedTuple):
    """A limit of `max_requests` per window of `expiry` seconds."""

    max_requests: int
    expiry: int


def parse_rate_limit(text: str) -> RateLimit:
    """Parse `"100/60"` (100 requests per 60 s); both numbers from 1 to 2**31 - 1."""
    match = _RATE_LIMIT.match(text)
    if match is None or not all(1 <= int(n) < 2**31 for n in match.groups()):
        raise ValueError("expected N/S with N and S at least 1, such as 100/60")
    return RateLimit(int(match[1]), int(match[2]))


class StaticKey(BaseModel):
    """One entry of `APPKIT_API_KEYS`: a key (plain or as SHA-256) and the project it opens."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str | None = None
    key_sha256: str | None = None
    org_id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    project_id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    key_id: str | None = None
    product: str | None = None
    scopes: tuple[str, ...] = ()
    rate_limit: str | None = None

    @field_validator("org_id", "project_id", "key_id", "product")
    @classmethod
    def _printable_id(cls, value: str | None) -> str | None:
        if value is not None and CONTROL_CHARACTERS.search(value):
            raise ValueError("must not contain control characters such as line breaks")
        return value

    @field_validator("key_sha256")
    @classmethod
    def _hex_digest(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", value):
            raise ValueError("key_sha256 must be 64 hexadecimal characters")
        return value.lower() if value else value

    @field_validator("rate_limit")
    @classmethod
    def _rate_limit(cls, value: str | None) -> str | None:
        if value is not None:
            parse_rate_limit(value)
        return value

    @model_validator(mode="after")
    def _one_key(self) -> StaticKey:
        if (self.key is None) == (self.key_sha256 is None):
            raise ValueError("each entry needs exactly one of key or key_sha256")
        if self.key is not None and not self.key:
            raise ValueError("key must not be empty")
        return self


class StaticKeys:
    """`APPKIT_API_KEYS` as a `{SHA-256 digest: token}` dict, built once when settings load.

    Only the table is kept, not a model per entry: 100,000 keys cost their table alone.
    """

    __slots__ = ("by_digest", "plain")

    def __init__(self, by_digest: Mapping[bytes, ProjectToken], plain: int = 0) -> None:
        self.by_digest = by_digest
        self.plain = plain  # entries given as plain-text `key`, refused in production

    def __len__(self) -> int:
        return len(self.by_digest)

    def __repr__(self) -> str:
        return f"StaticKeys({len(self)} keys)"

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(_static_keys)


def _key_entries(text: str) -> Any:
    """The JSON list in `text`, or in the file `text` names (read here, once per load)."""
    text = text.strip()
    if not text:
        return []
    if not text.startswith("["):
        path = Path(text)
        if not path.is_file():
            raise ValueError("is neither a JSON list nor the path of a JSON file")
        text = path.read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"is not valid JSON ({error.msg} at line {error.lineno})") from None


# The last table built from `APPKIT_API_KEYS` text and what it was built from: settings read
# again from the same source (the production entry point checks them, then the worker loads
# them; `use_service_name` re-reads) reuse it instead of holding a second copy.
_last_table: tuple[tuple[Any, ...], StaticKeys] | None = None


def _key_source(text: str) -> tuple[Any, ...] | None:
    """What a table built from `text` depends on: the text, or the file it names as it is
    now (path, inode, size, modification and change times); None when it names no file."""
    text = text.strip()
    if not text or text.startswith("["):
        return ("text", text)
    path = Path(text)
    try:
        found = path.stat()
    except OSError:
        return None
    # The change time too: a file rewritten in place keeps its inode, and `cp -p` or `touch -r`
    # can put its modification time back, but nothing sets the change time back.
    return (
        "file",
        str(path.resolve()),
        found.st_ino,
        found.st_size,
        found.st_mtime_ns,
        found.st_ctime_ns,
    )


def _static_keys(value: Any) -> StaticKeys:
    global _last_table
    if isinstance(value, StaticKeys):
        return value
    source = _key_source(value) if isinstance(value, str) else None
    last = _last_table
    if source is not None and last is not None and last[0] == source:
        return last[1]
    entries = _key_entries(value) if isinstance(value, str) else value
    if not isinstance(entries, list | tuple):
        raise ValueError("must be a JSON list of key entries")
    # Imported here: the table holds tokens, and the token module imports this one.
    from appkit_runtime.auth import static_keys

    table = static_keys.build_table(entries)
    if source is not None:
        _last_table = (source, table)
    return table


class Settings(BaseSettings):
    """Every `APPKIT_*` variable; each field's description is its line in the settings reference."""

    # allow_inf_nan=False: an infinite time-out never fires and NaN slips past every bound.
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", frozen=True, allow_inf_nan=False
    )

    service_name: str = Field(
        default="appkit-service",
        description="service name in metrics and the embedded database file's name",
        json_schema_extra={"shown_default": "the name given to `get_fastapi_app`"},
    )
    env: Literal["development", "test", "production"] = Field(
        default="development",
        description="`development`, `test` or `production`; production refuses `memory://` "
        "and plain-text keys",
    )
    redis_url: str = Field(
        default="memory://",
        description="Redis for every dependency name: `redis://`, `rediss://`, `unix://`, "
        "`redis+cluster://`, or `memory://` (in-process, one warning at start-up); the URL names "
        "a host (a socket path for `unix://`), the database is a number (`/3`), only 0 in a "
        "cluster, and query options (`?socket_timeout=2`) are checked at start-up",
    )
    redis_urls: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="Redis for one dependency name: `RATELIMIT`, `AUTHENTICATION_CACHE`, "
        "`METRICS`, or your own",
        json_schema_extra={
            "variable": "APPKIT_REDIS_URL_<NAME>",
            "shown_default": "`APPKIT_REDIS_URL`",
        },
    )
    redis_cluster: bool = Field(
        default=False, description="treat every Redis URL as a Redis Cluster entry point"
    )
    redis_prefix: str = Field(
        default="appkit", description="first part of every Redis key the runtime writes"
    )
    database_url: str | None = Field(
        default=None,
        description="the `default` database; `postgresql://` gets asyncpg, `sqlite://` aiosqlite",
        json_schema_extra={"shown_default": "unset: `sqlite+aiosqlite:///./<service>.db`"},
    )
    database_urls: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="another named database, such as `USAGE` for the billing sink",
        json_schema_extra={"variable": "APPKIT_DATABASE_URL_<NAME>"},
    )
    database_pool_size: int = Field(
        default=5,
        ge=1,
        description="PostgreSQL connections each server process keeps open to each database",
    )
    database_max_overflow: int = Field(
        default=10,
        ge=0,
        description="PostgreSQL connections a process may open past the pool under load, each "
        "closed when it is handed back (`0`: never more than the pool)",
    )
    auth_backend: Literal["static", "http"] = Field(
        default="static",
        description="key authority: `static` (keys from `APPKIT_API_KEYS`) or `http`",
    )
    auth_url: str | None = Field(
        default=None,
        description="the `http` authority's endpoint: `http://` or `https://` with a host, "
        "checked at start-up",
    )
    auth_timeout: float = Field(
        default=2.0,
        gt=0,
        description="seconds before the `http` authority counts as unavailable",
    )
    auth_cache_ttl: float = Field(
        default=10.0,
        ge=0,
        le=MAX_AUTH_TTL_SECONDS,
        description="longest seconds a resolved key stays in the in-process cache (at most 86400)",
    )
    auth_negative_ttl: float = Field(
        default=5.0,
        ge=0,
        le=MAX_AUTH_TTL_SECONDS,
        description="seconds an unknown key is remembered as unknown (at most 86400)",
    )
    auth_negative_cache_max: int = Field(
        default=100_000,
        ge=1,
        description="most unknown keys remembered in-process; past it the oldest goes "
        '(`appkit_auth_cache_evictions_total{cache="invalid"}`)',
    )
    auth_max_concurrent: int = Field(
        default=32,
        ge=1,
        description="most key-authority calls in flight per process; an uncached key beyond "
        "it gets 503 with `Retry-After` at once",
    )
    api_keys: Annotated[StaticKeys, NoDecode] = Field(
        default=StaticKeys({}),
        description="static keys: a JSON list, or the path of a JSON file",
    )
    ratelimit_default: str = Field(
        default="100/60",
        description="requests per window (seconds) when neither the key nor the route sets a limit",
    )
    ratelimit_fail_open: bool = Field(
        default=True,
        description="Redis unreachable: let requests through (`true`) or answer 503 (`false`)",
    )
    ratelimit_headers: Literal["draft", "legacy", "both", "off"] = Field(
        default="draft",
        description="`draft` (`RateLimit-Policy` and `RateLimit`), `legacy` "
        "(`RateLimit-Limit/-Remaining/-Reset`), `both` or `off`",
    )
    ratelimit_mode: Literal["enforce", "monitor"] = Field(
        default="enforce", description="`monitor` counts and reports but never rejects"
    )
    metrics_flush_seconds: float = Field(
        default=5.0,
        gt=0,
        description="how often per-project usage counts are flushed to Redis",
    )
    usage_days_kept: int = Field(
        default=400,
        ge=0,
        description="days a project's per-day usage hash stays in Redis after its UTC day "
        "ends; `0` keeps them all (the all-time hash is always kept)",
    )
    usage_stream: bool = Field(
        default=False,
        description="also append each usage flush to a Redis Stream for the billing drain "
        "worker; off, a flush sends nothing more",
    )
    usage_stream_shards: int = Field(
        default=1,
        ge=1,
        le=1024,
        description="streams the usage entries are spread over (1 to 1024), each in its own "
        "Redis Cluster slot; service and worker must agree",
    )
    usage_stream_maxlen: int = Field(
        default=1_000_000,
        ge=0,
        description="about how many entries each stream keeps (`MAXLEN ~`); a warning when "
        "the cap drops entries no worker has acknowledged; `0` uncapped",
    )
    gc_freeze: bool | None = Field(
        default=None,
        description="after start-up, move every live object to the garbage collector's "
        "permanent generation (`gc.freeze()`), so full collections under load scan only what "
        "requests made; given back at shutdown",
        json_schema_extra={"shown_default": "`true`, `false` when `APPKIT_ENV=test`"},
    )
    trusted_proxies: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="comma-separated proxy addresses or networks whose `X-Forwarded-For` is "
        "believed; give uvicorn the same (`--forwarded-allow-ips`)",
    )
    log_format: Literal["json", "text"] | None = Field(
        default=None,
        description="`json`: one JSON object a line on stdout; `text`: plain lines on stderr",
        json_schema_extra={"shown_default": "`json` when `APPKIT_ENV=production`, else `text`"},
    )
    log_level: Literal["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"] = Field(
        default="INFO", description="the root logger's level"
    )
    access_log: bool = Field(
        default=True, description="one access line per request (`false`: none)"
    )
    trace_export: Literal["process", "thread"] = Field(
        default="process",
        description="with tracing on, how spans are kept and sent: `process`, recorded as "
        "plain values and encoded and sent by a child process per server process (off the "
        "requests' CPU); `thread`, the SDK's own spans and background thread in the server "
        "process",
    )

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            try:
                ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is neither an IP address nor a network") from None
        return value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower_case(cls, value: Any) -> Any:
        return (value.strip().lower() or None) if isinstance(value, str) else value

    @field_validator("trace_export", mode="before")
    @classmethod
    def _export_default(cls, value: Any) -> Any:
        return (value.strip().lower() or "process") if isinstance(value, str) else value

    # An empty variable (`APPKIT_LOG_LEVEL=${LEVEL}` with LEVEL unset) means the default, as
    # for the log format.
    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_case(cls, value: Any) -> Any:
        return (value.strip().upper() or "INFO") if isinstance(value, str) else value

    @field_validator("access_log", mode="before")
    @classmethod
    def _access_default(cls, value: Any) -> Any:
        return (value.strip() or True) if isinstance(value, str) else value

    @field_validator("ratelimit_default")
    @classmethod
    def _rate_limit(cls, value: str) -> str:
        parse_rate_limit(value)
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        if value is not None:
            check_database_url(value)
        return value

    @model_validator(mode="after")
    def _redis_urls(self) -> Settings:
        # After the fields: whether a database number is allowed depends on APPKIT_REDIS_CLUSTER.
        for variable, url in self.redis_url_variables().items():
            try:
                check_redis_url(url, cluster=self.redis_cluster)
            except ValueError as error:
                raise ConfigurationError(f"{variable}: {error}") from None
        return self

    @model_validator(mode="after")
    def _http_authority_has_a_url(self) -> Settings:
        if self.auth_backend == "http" and not self.auth_url:
            raise ConfigurationError(
                "APPKIT_AUTH_URL: not set, and APPKIT_AUTH_BACKEND=http needs the authority's URL"
            )
        if self.auth_backend == "http" and self.auth_url:
            try:
                check_authority_url(self.auth_url)
            except ValueError as error:
                raise ConfigurationError(f"APPKIT_AUTH_URL: {error}") from None
        return self

    @model_validator(mode="after")
    def _production_rules(self) -> Settings:
        if self.env != "production":
            return self
        for variable, url in self.redis_url_variables().items():
            if url.startswith("memory://"):
                raise ConfigurationError(
                    f"{variable}: memory:// is an in-process emulation and is refused "
                    "when APPKIT_ENV=production; point it at a Redis server"
                )
        if self.api_keys.plain:
            raise ConfigurationError(
                "APPKIT_API_KEYS: plain `key` entries are refused when APPKIT_ENV=production; "
                "store key_sha256 instead"
            )
        return self

    @property
    def default_rate_limit(self) -> RateLimit:
        return parse_rate_limit(self.ratelimit_default)

    @property
    def freezes_heap(self) -> bool:
        """`APPKIT_GC_FREEZE`; unset, on except under tests, where each test's lifespan would
        pay a full collection for nothing."""
        return self.env != "test" if self.gc_freeze is None else self.gc_freeze

    @property
    def log_style(self) -> Literal["json", "text"]:
        """`APPKIT_LOG_FORMAT`; unset, JSON in production and text elsewhere."""
        if self.log_format is not None:
            return self.log_format
        return "json" if self.env == "production" else "text"

    @property
    def installed_log_style(self) -> Literal["json", "text"] | None:
        """The handler style the runtime installs; None under `APPKIT_ENV=test` without
        `APPKIT_LOG_FORMAT`, where pytest's own log capture stays in charge."""
        if self.env == "test" and self.log_format is None:
            return None
        return self.log_style

    @property
    def embedded_database_url(self) -> str:
        return f"sqlite+aiosqlite:///./{self.service_name}.db"

    def redis_url_variables(self) -> dict[str, str]:
        """Every configured Redis URL by the variable that set it."""
        urls = {f"{ENV_PREFIX}REDIS_URL": self.redis_url}
        urls.update({f"{ENV_PREFIX}REDIS_URL_{n.upper()}": u for n, u in self.redis_urls.items()})
        return urls

    def redis_url_for(self, name: str) -> tuple[str, str]:
        """The URL for a Redis dependency name and the variable it came from."""
        variable = f"{ENV_PREFIX}REDIS_URL_{name.upper()}"
        if name.lower() in self.redis_urls:
            return self.redis_urls[name.lower()], variable
        return self.redis_url, f"{ENV_PREFIX}REDIS_URL"

    def database_url_for(self, name: str) -> tuple[str | None, str]:
        """The URL for a database name (None when unset) and the variable it comes from."""
        if name == "default":
            return self.database_url, f"{ENV_PREFIX}DATABASE_URL"
        variable = f"{ENV_PREFIX}DATABASE_URL_{name.upper()}"
        return self.database_urls.get(name.lower()), variable


def _named_urls(environ: dict[str, str], stem: str) -> dict[str, str]:
    """`APPKIT_<STEM>_<NAME>` variables as `{name: url}` (names lower-cased)."""
    prefix = f"{ENV_PREFIX}{stem}_"
    return {
        key[len(prefix) :].lower(): value
        for key, value in environ.items()
        if key.startswith(prefix) and value
    }


def _environ() -> dict[str, str]:
    from dotenv import dotenv_values

    values = {k: v for k, v in dotenv_values(".env").items() if v is not None}
    values.update(os.environ)
    return values


_service_name: str | None = None


def use_service_name(name: str) -> Settings:
    """Make `name` the service name wherever `APPKIT_SERVICE_NAME` is unset; re-read settings."""
    global _service_name
    _service_name = name
    get_settings.cache_clear()
    return get_settings()


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment (and `.env`), with `overrides` on top."""
    environ = _environ()
    if _service_name is not None and f"{ENV_PREFIX}SERVICE_NAME" not in environ:
        overrides.setdefault("service_name", _service_name)
    named = {
        "redis_urls": _named_urls(environ, "REDIS_URL"),
        "database_urls": _named_urls(environ, "DATABASE_URL"),
    }
    named.update({k: v for k, v in overrides.items() if k in named})
    try:
        settings = Settings(**{**overrides, **named})
        for name, url in settings.database_urls.items():
            _checked(check_database_url, url, f"{ENV_PREFIX}DATABASE_URL_{name.upper()}")
    except ValidationError as error:
        raise ConfigurationError(_one_line(error)) from None
    return settings


def _checked(check: Any, url: str, variable: str) -> None:
    try:
        check(url)
    except ValueError as error:
        raise ConfigurationError(f"{variable}: {error}") from None


def _one_line(error: ValidationError) -> str:
    first = error.errors(include_url=False)[0]
    field = str(first["loc"][0]) if first["loc"] else ""
    message = str(first["msg"]).removeprefix("Value error, ")
    if isinstance(first.get("ctx", {}).get("error"), ConfigurationError):
        return str(first["ctx"]["error"])
    variable = f"{ENV_PREFIX}{field.upper()}" if field else "settings"
    if field and field not in SECRET_FIELDS and len(first["loc"]) == 1:
        return f"{variable}: {message} (got {first['input']!r})"
    where = ".".join(str(part) for part in first["loc"][1:])
    return f"{variable}: {message}" + (f" (at {where})" if where else "")


class _SettingsOnce:
    """`get_settings()`: loads settings once, even when threads ask at the same moment (a
    large `APPKIT_API_KEYS` is parsed once, not once per thread); `cache_clear()` re-reads."""

    def __init__(self) -> None:
        self._settings: Settings | None = None
        self._lock = threading.Lock()

    def __call__(self) -> Settings:
        settings = self._settings
        if settings is None:
            with self._lock:
                settings = self._settings
                if settings is None:
                    settings = self._settings = load_settings()
        return settings

    def cache_clear(self) -> None:
        """Forget the settings; the next call reads them again."""
        self._settings = None


get_settings = _SettingsOnce()
"""The process's settings, read once; `get_settings.cache_clear()` re-reads them."""


def get_database_url(name: str = "default") -> DatabaseURL | None:
    """The parts of the URL configured for database `name`, or None when there is none."""
    from sqlalchemy.engine import make_url

    url, _ = get_settings().database_url_for(name)
    if url is None:
        return None
    parsed = make_url(url)
    return DatabaseURL(
        url=url,
        async_url=async_database_url(url),
        drivername=parsed.drivername,
        user=parsed.username,
        password=parsed.password,
        host=parsed.host,
        port=parsed.port,
        name=parsed.database,
    )


def get_async_redis_instance(name: str) -> async_redis.Redis:
    """An async client for the Redis dependency `name`; pools are cached per name and loop."""
    from appkit_runtime.redis_pools import async_client

    return async_client(name)


def get_redis_instance(name: str) -> sync_redis.Redis:
    """A synchronous client for the Redis dependency `name`; its pool is cached per name."""
    from appkit_runtime.redis_pools import sync_client

    return sync_client(name)
