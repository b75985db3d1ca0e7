"""The tracer provider's resource (the service's name), hashed once; imported with tracing on.

The OTLP encoder groups every exported span by its resource, and `Resource.__hash__` writes
the attributes out as JSON on each call: about 3 µs a span, on the exporter's thread but in
the server's process, so taken from the requests it serves.
"""

from __future__ import annotations

from opentelemetry.sdk.resources import SERVICE_NAME, Resource


class OnceHashedResource(Resource):
    """A `Resource` equal to and hashing like the SDK's, its hash kept after the first call
    (its attributes are immutable)."""

    _hash: int | None = None

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = super().__hash__()
        return self._hash


def service_resource(name: str) -> Resource:
    """`Resource.create` (so `OTEL_RESOURCE_ATTRIBUTES` and the SDK's detectors apply) for
    service `name`, hashed once."""
    created = Resource.create({SERVICE_NAME: name})
    return OnceHashedResource(created.attributes, created.schema_url)
