"""Where a registered webhook may point, and how it is reached. A receiver is chosen in the admin, so the platform
must not become a way into its own network: https on port 443 only, to addresses that are all public (IPv6
forms that carry an IPv4 address are judged by that address), unless the host is on
STAGEGATE_WEBHOOK_ALLOWED_HOSTS (an operator's explicit list; plain http and any port are then allowed too).

Checked when the subscription is saved, and again at each delivery, which then connects to the very address it
checked (`post_pinned`): a name whose DNS answer changes between the check and the connection cannot lead it
elsewhere.
"""

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import certifi
import urllib3
from django.conf import settings


class WebhookUrlRefused(ValueError):
    pass


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    address: str | None  # the checked address to connect to; None for an allowed host (connected by name)
    path: str


def _allowed_hosts() -> set[str]:
    return {host.lower() for host in getattr(settings, "STAGEGATE_WEBHOOK_ALLOWED_HOSTS", [])}


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in ipaddress.ip_network("64:ff9b::/96"):  # NAT64
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is None and int(ip) >> 32 == 0:  # ::a.b.c.d (IPv4-compatible)
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return embedded.is_global
    return ip.is_global


def webhook_target(url: str) -> Target:
    """The checked target of `url`, or WebhookUrlRefused with the reason."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not host:
        raise WebhookUrlRefused("The URL names no host.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise WebhookUrlRefused("The URL's port is not a port number.") from None
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if host in _allowed_hosts():
        if parts.scheme not in ("http", "https"):
            raise WebhookUrlRefused("Only http and https URLs.")
        return Target(parts.scheme, host, port, None, path)
    if parts.scheme != "https" or port != 443:
        raise WebhookUrlRefused("Webhooks go over https on port 443 (other schemes and ports only to hosts on "
                                "STAGEGATE_WEBHOOK_ALLOWED_HOSTS).")
    try:
        addresses = sorted({info[4][0] for info in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)})
    except socket.gaierror as error:
        raise WebhookUrlRefused(f"{host} does not resolve: {error}.") from None
    for address in addresses:
        if not _public(address):
            raise WebhookUrlRefused(f"{host} resolves to {address}, an address inside a private or reserved "
                                    "network; add the host to STAGEGATE_WEBHOOK_ALLOWED_HOSTS if it is meant.")
    return Target("https", host, port, addresses[0], path)


def webhook_url_check(url: str) -> None:
    webhook_target(url)


def post_pinned(url: str, *, body: bytes, headers: dict[str, str], timeout_s: float) -> int:
    """POST to the address checked just now (TLS still verified against the host's name); no redirects.
    Returns the status; raises on a refused URL or a failed connection."""
    target = webhook_target(url)
    headers = {**headers, "Host": target.host}
    if target.address is None:  # an operator-allowed host, reached by name
        pool = urllib3.connection_from_url(url, timeout=timeout_s, retries=False)
    else:
        pool = urllib3.HTTPSConnectionPool(
            target.address, target.port, timeout=timeout_s, retries=False, server_hostname=target.host,
            assert_hostname=target.host, cert_reqs="CERT_REQUIRED", ca_certs=certifi.where())
    response = pool.urlopen("POST", target.path, body=body, headers=headers, redirect=False)
    return response.status
