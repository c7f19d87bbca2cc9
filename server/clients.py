"""Who is asking: the client address a rate limit and the question log are keyed by.

The peer of the TCP connection is the client, unless it is a reverse proxy listed in KB_TRUSTED_PROXIES; then
the address that proxy appended to X-Forwarded-For is. Nothing else in X-Forwarded-For is believed: a client
can write anything there, so trusting it by default would let anyone rotate it past the rate limit. With nginx:
`proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;` and KB_TRUSTED_PROXIES=<nginx's address>.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Sequence

from starlette.requests import HTTPConnection

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(entries: Sequence[str]) -> tuple[Network, ...]:
    """`10.0.0.5`, `10.0.0.0/8`, `::1` → networks; a malformed entry is a configuration error."""
    try:
        return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries)
    except ValueError as exc:
        raise ValueError(f"KB_TRUSTED_PROXIES: {exc}") from exc


def _trusted(address: str, proxies: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def client_address(connection: HTTPConnection, proxies: tuple[Network, ...]) -> str:
    """The client's address: the peer, or, behind trusted proxies, the last address they did not add."""
    peer = connection.client.host if connection.client else "unknown"
    if not proxies or not _trusted(peer, proxies):
        return peer
    forwarded = [a.strip() for h in connection.headers.getlist("x-forwarded-for") for a in h.split(",")]
    for address in reversed([a for a in forwarded if a]):
        if not _trusted(address, proxies):
            return address
    return peer


def holds_key(connection: HTTPConnection, key: str) -> bool:
    """Whether the request carries `key` as its bearer token (compared in constant time); never with no key set."""
    supplied = connection.headers.get("authorization", "").removeprefix("Bearer ").strip()
    return bool(key) and hmac.compare_digest(supplied.encode(), key.encode())
