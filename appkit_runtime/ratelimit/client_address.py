"""The address a public route's limiter counts: the peer, or what a trusted proxy says.

`X-Forwarded-For` is read only when the peer is one of `APPKIT_TRUSTED_PROXIES` (addresses or
networks), and from the right: each proxy appends the address it saw, so the rightmost entry
not itself a trusted proxy is the client. Entries left of it are the client's own claims.

The peer is the ASGI scope's `client` as the server left it: uvicorn rewrites it from
`X-Forwarded-For` before the app runs (from 127.0.0.1 by default), so the server must trust
the same proxies (`--forwarded-allow-ips "$APPKIT_TRUSTED_PROXIES"`, `--no-proxy-headers`
when there are none). A rewrite the runtime would not have made is logged once.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

from appkit_runtime.errors import ConfigurationError

logger = logging.getLogger("appkit_runtime.ratelimit")

UNKNOWN = "unknown"

_Network = IPv4Network | IPv6Network


@lru_cache(maxsize=8)
def trusted_networks(proxies: tuple[str, ...]) -> tuple[_Network, ...]:
    """`APPKIT_TRUSTED_PROXIES` parsed; a bad entry is a `ConfigurationError` naming it."""
    networks = []
    for entry in proxies:
        try:
            networks.append(ip_network(entry, strict=False))
        except ValueError:
            raise ConfigurationError(
                f"APPKIT_TRUSTED_PROXIES: {entry!r} is neither an IP address nor a network"
            ) from None
    return tuple(networks)


def _trusted(address: str, networks: tuple[_Network, ...]) -> bool:
    try:
        parsed = ip_address(address)
    except ValueError:
        return False
    # A dual-stack listener reports an IPv4 peer as ::ffff:a.b.c.d, which no IPv4 network holds.
    mapped = getattr(parsed, "ipv4_mapped", None)
    return any((mapped or parsed) in network or parsed in network for network in networks)


def client_address(peer: str | None, forwarded_for: str | None, proxies: tuple[str, ...]) -> str:
    """The client's address for a request from `peer` carrying `forwarded_for`."""
    if not peer:
        return UNKNOWN
    networks = trusted_networks(proxies)
    if not forwarded_for or not networks or not _trusted(peer, networks):
        return peer
    return _rightmost_untrusted(_hops(forwarded_for), networks) or peer


def _hops(forwarded_for: str) -> list[str]:
    return [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]


def _rightmost_untrusted(hops: list[str], networks: tuple[_Network, ...]) -> str | None:
    for hop in reversed(hops):
        if not _trusted(hop, networks):
            return hop
    return hops[0] if hops else None


def server_rewrote(peer: str | None, forwarded_for: str | None, proxies: tuple[str, ...]) -> bool:
    """Whether the server took `peer` from `X-Forwarded-For` where the runtime would not.

    A peer that is one of the header's hops was put there by the server (a proxy lists the
    addresses it saw, never its own); the runtime would have picked the rightmost hop that is
    not one of `proxies`, and nothing at all when there are none.
    """
    if not peer or not forwarded_for:
        return False
    hops = _hops(forwarded_for)
    if peer not in hops:
        return False
    networks = trusted_networks(proxies)
    return not networks or peer != _rightmost_untrusted(hops, networks)


_warned = False


def warn_if_server_rewrote(
    peer: str | None, forwarded_for: str | None, proxies: tuple[str, ...]
) -> None:
    """Log once per process that the server's proxy trust differs from the runtime's."""
    global _warned
    if _warned or not server_rewrote(peer, forwarded_for, proxies):
        return
    _warned = True
    logger.warning(
        "the server took the client address %s from X-Forwarded-For, which "
        "APPKIT_TRUSTED_PROXIES (%s) does not allow, so clients can choose their address: run "
        'uvicorn with --forwarded-allow-ips "$APPKIT_TRUSTED_PROXIES", or --no-proxy-headers '
        "when it is empty",
        peer,
        ", ".join(proxies) or "empty",
    )
