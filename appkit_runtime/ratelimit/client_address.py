"""The address a public route's limiter counts: the peer, or what a trusted proxy says.

`X-Forwarded-For` is read only when the peer is one of `APPKIT_TRUSTED_PROXIES` (addresses or
networks), and from the right: each proxy appends the address it saw, so the rightmost entry
not itself a trusted proxy is the client. Entries left of it are the client's own claims.
"""

from __future__ import annotations

from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

from appkit_runtime.errors import ConfigurationError

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
    return any(parsed in network for network in networks)


def client_address(peer: str | None, forwarded_for: str | None, proxies: tuple[str, ...]) -> str:
    """The client's address for a request from `peer` carrying `forwarded_for`."""
    if not peer:
        return UNKNOWN
    networks = trusted_networks(proxies)
    if not forwarded_for or not networks or not _trusted(peer, networks):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, networks):
            return hop
    return hops[0] if hops else peer
