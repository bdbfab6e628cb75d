"""The address a request came from: the one function the audit trail, the rate limits and the login lockout ask.

Behind a proxy every request arrives from the proxy's address. `X-Forwarded-For` says who the proxy served,
but any client can send that header too, so it is believed only as far as the hops that wrote it are trusted:
peers listed in STAGEGATE_TRUSTED_PROXIES (CIDRs). Reading the header from its right end, each address a
trusted proxy appended is skipped, and the first one that is not a trusted proxy is the client. From an
untrusted peer the header is ignored and the peer's own address is the client.

Rate limits and the lockout count IPv6 clients by /64: one host normally holds a whole /64, and counting each
of its 2^64 addresses apart would let it dodge every limit.
"""

import ipaddress
from functools import lru_cache

from django.conf import settings

IPV6_CLIENT_PREFIX = 64
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@lru_cache(maxsize=8)
def _networks(cidrs: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def _trusted(address: Address) -> bool:
    return any(address in network for network in _networks(tuple(settings.STAGEGATE_TRUSTED_PROXIES)))


def _parse(value: str) -> Address | None:
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    # An IPv4 client seen through an IPv6 socket is still that IPv4 client.
    return address.ipv4_mapped or address if isinstance(address, ipaddress.IPv6Address) else address


def _client_address(request) -> Address | None:
    peer = _parse(request.META.get("REMOTE_ADDR") or "")
    if peer is None or not _trusted(peer):
        return peer
    forwarded = [part for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    client = peer
    for hop in reversed(forwarded):
        address = _parse(hop)
        if address is None:  # garbage only a client writes: the hop before it is the last one believed
            break
        client = address
        if not _trusted(address):
            break
    return client


def client_ip(request) -> str | None:
    """The client's address as the audit trail records it (full, never grouped); None without a request."""
    if request is None:
        return None
    address = _client_address(request)
    return str(address) if address is not None else None


def client_key(request) -> str | None:
    """The client as rate limits and the lockout count it: its IPv4 address, or its IPv6 /64 (as the network's
    first address, so it still fits an address field)."""
    address = _client_address(request) if request is not None else None
    if address is None:
        return None
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/{IPV6_CLIENT_PREFIX}", strict=False).network_address)
    return str(address)
