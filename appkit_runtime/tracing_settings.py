"""The OpenTelemetry variables checked before tracing starts, so a typo stops start-up.

The SDK reads these variables itself and, given a bad one, logs and falls back to a default
(a sampler ratio of 2 samples everything, an unknown sampler samples everything) or raises
a traceback from deep inside (`OTEL_BSP_SCHEDULE_DELAY=abc`). An operator who set them meant
something: refuse them here, with one line naming the variable, as for `APPKIT_*` settings.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from urllib.parse import urlsplit

from appkit_runtime.errors import ConfigurationError

EXPORTERS = ("otlp", "console")
# The Python OTLP exporters speak protobuf over HTTP or gRPC; there is no http/json one.
PROTOCOLS = ("http/protobuf", "grpc")
SAMPLERS = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)
ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
TIMEOUTS = ("OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")
# The batch processor's integers, each with the least value it accepts.
BATCH_INTEGERS = {
    "OTEL_BSP_SCHEDULE_DELAY": 1,
    "OTEL_BSP_EXPORT_TIMEOUT": 0,
    "OTEL_BSP_MAX_QUEUE_SIZE": 1,
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": 1,
}


# The span limits: each an integer ≥ 0, or empty for no limit.
LIMITS = (
    "OTEL_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    "OTEL_SPAN_EVENT_COUNT_LIMIT",
    "OTEL_SPAN_LINK_COUNT_LIMIT",
    "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT",
    "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT",
)


def trace_exporters(environ: Mapping[str, str] = os.environ) -> list[str]:
    """The exporters `OTEL_TRACES_EXPORTER` names (a comma list; `otlp` when unset)."""
    given = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    names = [name.strip() for name in given.split(",") if name.strip()] or ["otlp"]
    if "none" in names and len(names) > 1:
        raise ConfigurationError(
            f"OTEL_TRACES_EXPORTER: none turns traces off, so it cannot come with others, "
            f"got {given!r}"
        )
    for name in names:
        if name not in EXPORTERS:
            raise ConfigurationError(
                f"OTEL_TRACES_EXPORTER: unknown exporter {name!r}; use otlp, console or none"
            )
    return names


def trace_protocol(environ: Mapping[str, str] = os.environ) -> str:
    """The OTLP protocol: `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, else the general one."""
    for variable in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        given = environ.get(variable, "").strip().lower()
        if given:
            if given not in PROTOCOLS:
                raise ConfigurationError(
                    f"{variable}: unsupported protocol {given!r}; use http/protobuf or grpc"
                )
            return given
    return "http/protobuf"


def check_otel_variables(environ: Mapping[str, str] = os.environ) -> None:
    """Raise `ConfigurationError` naming the first OTEL variable the SDK would misread."""
    trace_exporters(environ)
    trace_protocol(environ)
    for variable in ENDPOINTS:
        given = environ.get(variable, "").strip()
        if given:
            parts = urlsplit(given)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigurationError(
                    f"{variable}: expected an http:// or https:// URL with a host, got {given!r}"
                )
            try:
                parts.port  # noqa: B018 (read for the check: it raises past 65535)
            except ValueError:
                raise ConfigurationError(
                    f"{variable}: the port must be a number from 0 to 65535, got {given!r}"
                ) from None
    sampler = environ.get("OTEL_TRACES_SAMPLER", "").strip().lower()
    if sampler and sampler not in SAMPLERS:
        raise ConfigurationError(
            f"OTEL_TRACES_SAMPLER: unknown sampler {sampler!r}; use one of {', '.join(SAMPLERS)}"
        )
    ratio = environ.get("OTEL_TRACES_SAMPLER_ARG", "").strip()
    if ratio and sampler.endswith("traceidratio") and not 0 <= _number(ratio) <= 1:
        raise ConfigurationError(
            f"OTEL_TRACES_SAMPLER_ARG: expected a ratio from 0 to 1, got {ratio!r}"
        )
    for variable in TIMEOUTS:
        given = environ.get(variable, "").strip()
        if given and not 0 <= _number(given) < math.inf:
            raise ConfigurationError(f"{variable}: expected a finite number ≥ 0, got {given!r}")
    for variable, least in BATCH_INTEGERS.items():
        given = environ.get(variable, "").strip()
        if given and not (given.isascii() and given.isdigit() and int(given) >= least):
            raise ConfigurationError(f"{variable}: expected an integer ≥ {least}, got {given!r}")
    for variable in LIMITS:
        given = environ.get(variable, "").strip()
        if given and not (given.isascii() and given.isdigit()):
            raise ConfigurationError(
                f"{variable}: expected an integer ≥ 0 (or nothing, for no limit), got {given!r}"
            )
    batch_given = environ.get("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "").strip()
    queue_given = environ.get("OTEL_BSP_MAX_QUEUE_SIZE", "").strip()
    batch, queue = int(batch_given or 512), int(queue_given or 2048)
    if batch > queue:
        unset = " when unset"
        raise ConfigurationError(
            f"OTEL_BSP_MAX_EXPORT_BATCH_SIZE ({batch}{'' if batch_given else unset}) must not "
            f"exceed OTEL_BSP_MAX_QUEUE_SIZE ({queue}{'' if queue_given else unset})"
        )


def _number(text: str) -> float:
    """`text` as a float, or NaN (which no range check accepts)."""
    try:
        return float(text)
    except ValueError:
        return float("nan")
