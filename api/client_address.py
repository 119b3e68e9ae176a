"""Who a public request comes from, and which host it asked for, believing forwarding headers only from
trusted proxies (`BEACON_TRUSTED_PROXIES`, README "Configuration").

Public rate limits (subscribe requests) are per client: an IPv4 address, or an IPv6 /64 — one end site
usually holds a whole /64, so limiting single IPv6 addresses would limit nothing. `X-Forwarded-For` and
`X-Forwarded-Host` are anyone's to forge, so they count only when the TCP peer is a trusted proxy; the
client is then the right-most address in `X-Forwarded-For` that is not itself a trusted proxy.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

IPV6_CLIENT_PREFIX = 64


def _parse(value: str) -> IPAddress | None:
    value = value.strip()
    if value.startswith("[") and "]" in value:  # "[2001:db8::1]:443" as some proxies write it
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # "192.0.2.1:1234"
        value = value.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _header(scope: Any, name: bytes) -> str | None:
    values = [value.decode("latin-1") for key, value in scope.get("headers", ()) if key.lower() == name]
    return ",".join(values) if values else None


def peer_address(scope: Any) -> IPAddress | None:
    """The TCP peer of the connection (None when the server does not say, as in-process test clients)."""
    client = scope.get("client")
    if not client:
        return None
    return _parse(str(client[0]))


def is_trusted(address: IPAddress | None, trusted: Sequence[Network]) -> bool:
    return address is not None and any(address.version == network.version and address in network for network in trusted)


def client_address(scope: Any, trusted: Sequence[Network]) -> IPAddress | None:
    """The client's address: the peer, or behind trusted proxies the right-most untrusted hop of
    `X-Forwarded-For` (the left-most when every hop is trusted)."""
    peer = peer_address(scope)
    if not is_trusted(peer, trusted):
        return peer
    forwarded = _header(scope, b"x-forwarded-for")
    if not forwarded:
        return peer
    hops = [address for address in (_parse(part) for part in forwarded.split(",")) if address is not None]
    for hop in reversed(hops):
        if not is_trusted(hop, trusted):
            return hop
    return hops[0] if hops else peer


def client_key(scope: Any, trusted: Sequence[Network]) -> str:
    """The rate-limit key of a public request: `203.0.113.7`, or `2001:db8:1:2::/64` for IPv6."""
    address = client_address(scope, trusted)
    if address is None:
        return "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, IPV6_CLIENT_PREFIX), strict=False))
    return str(address)


def request_host(scope: Any, trusted: Sequence[Network]) -> str | None:
    """The host a request asked for, lower-cased, without port or trailing dot: `X-Forwarded-Host` (its
    first value) from a trusted proxy, else `Host`."""
    host = None
    if is_trusted(peer_address(scope), trusted):
        forwarded = _header(scope, b"x-forwarded-host")
        if forwarded:
            host = forwarded.split(",")[0]
    if host is None:
        host = _header(scope, b"host")
    return normalise_host(host)


def normalise_host(host: str | None) -> str | None:
    """A `Host` value as Beacon matches it: lower-cased, without port or trailing dot."""
    if not host:
        return None
    host = host.strip().lower()
    if host.startswith("["):
        host = host[: host.index("]") + 1] if "]" in host else host
    elif ":" in host:
        host = host.rsplit(":", 1)[0]
    return host.rstrip(".") or None
