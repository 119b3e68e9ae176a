"""Where a webhook may point (docs/architecture.md#subscribers): checked when an admin creates it and again
before every delivery attempt, since a name that resolved to a public address yesterday may resolve to
`169.254.169.254` today.

A target must be `https://` and every address its host resolves to must be public: loopback, private,
shared (CGNAT), link-local (which holds the clouds' metadata service), multicast, reserved and unspecified
addresses are refused, and so are the metadata addresses outside those ranges. `BEACON_WEBHOOK_ALLOW_PRIVATE=1`
lifts both rules (tests, and operators who mean it).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from domain.subscriber import InvalidWebhookUrl, check_webhook_url_form

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_SHARED = ipaddress.ip_network("100.64.0.0/10")
_METADATA = frozenset(
    ipaddress.ip_address(address)
    for address in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254", "192.0.0.192")
)


def forbidden(address: IPAddress) -> bool:
    """Whether a delivery must never go to this address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (
        address in _METADATA
        or address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or (isinstance(address, ipaddress.IPv4Address) and address in _SHARED)
        or (isinstance(address, ipaddress.IPv6Address) and address.is_site_local)
    )


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address the host resolves to (an IP literal resolves to itself), without blocking the loop."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    addresses: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


async def check_target(url: str, *, allow_private: bool, field: str = "url") -> list[IPAddress]:
    """The addresses a delivery to `url` may connect to, or `InvalidWebhookUrl` (code `forbidden_address`
    when the name resolves to a refused address, `unresolvable` when it resolves to nothing). A delivery
    should connect to one of the returned addresses, so the name is not resolved twice."""
    check_webhook_url_form(url, allow_http=allow_private, field=field)
    parts = urlsplit(url.strip())
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = await resolve(host, port)
    if not addresses:
        raise InvalidWebhookUrl(f"{field}: the host {host} does not resolve", field=field, code="unresolvable")
    if not allow_private:
        refused = [address for address in addresses if forbidden(address)]
        if refused:
            raise InvalidWebhookUrl(
                f"{field}: the host {host} resolves to {refused[0]}, a loopback, private, link-local or metadata"
                " address; webhooks must reach a public address",
                field=field,
                code="forbidden_address",
            )
    return addresses
