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


def _ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address in `address`, with a port (1.2.3.4:5678, [2001:db8::1]:80) dropped; None when there is none."""
    text = address.strip()
    if text.startswith("[") and "]" in text:
        text = text[1:text.index("]")]
    elif text.count(":") == 1:
        text = text.split(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _trusted(address: str, proxies: tuple[Network, ...]) -> bool:
    ip = _ip(address)
    return ip is not None and any(ip in network for network in proxies)


def client_key(address: str) -> str | None:
    """The key one client is known by: an IPv4 address, or an IPv6 /64 (what one household or phone is given,
    so rotating inside it gains nothing). None when the text is no address at all."""
    ip = _ip(address)
    if ip is None:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def client_address(connection: HTTPConnection, proxies: tuple[Network, ...]) -> str:
    """The client's key (client_key): the peer's, or, behind trusted proxies, that of the last address they did
    not add. What a proxy forwards that is no address counts as the proxy itself, so garbage cannot rotate."""
    peer = connection.client.host if connection.client else "unknown"
    peer_key = client_key(peer) or peer
    if not proxies or not _trusted(peer, proxies):
        return peer_key
    forwarded = [a.strip() for h in connection.headers.getlist("x-forwarded-for") for a in h.split(",")]
    for address in reversed([a for a in forwarded if a]):
        if not _trusted(address, proxies):
            return client_key(address) or peer_key
    return peer_key


def holds_key(connection: HTTPConnection, key: str) -> bool:
    """Whether the request carries `key` as its bearer token (compared in constant time); never with no key set."""
    supplied = connection.headers.get("authorization", "").removeprefix("Bearer ").strip()
    return bool(key) and hmac.compare_digest(supplied.encode(), key.encode())
