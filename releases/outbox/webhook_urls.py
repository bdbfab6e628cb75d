"""Where a registered webhook may point. A receiver is chosen in the admin, so the platform must not become a
way to reach its own network: https only, and no loopback, private, link-local or otherwise reserved address,
unless the host is on STAGEGATE_WEBHOOK_ALLOWED_HOSTS (an operator's explicit list; plain http is then allowed
too). Checked when the subscription is saved and again before each delivery, since a name can be re-pointed."""

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings


class WebhookUrlRefused(ValueError):
    pass


def _allowed_hosts() -> set[str]:
    return {host.lower() for host in getattr(settings, "STAGEGATE_WEBHOOK_ALLOWED_HOSTS", [])}


def webhook_url_check(url: str) -> None:
    """Raise WebhookUrlRefused with the reason, or return."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not host:
        raise WebhookUrlRefused("The URL names no host.")
    if host in _allowed_hosts():
        if parts.scheme not in ("http", "https"):
            raise WebhookUrlRefused("Only http and https URLs.")
        return
    if parts.scheme != "https":
        raise WebhookUrlRefused("Webhooks go over https (plain http only to hosts on STAGEGATE_WEBHOOK_ALLOWED_HOSTS).")
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, parts.port or 443, proto=socket.IPPROTO_TCP)}
    except socket.gaierror as error:
        raise WebhookUrlRefused(f"{host} does not resolve: {error}.") from None
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if not ip.is_global:
            raise WebhookUrlRefused(f"{host} resolves to {ip}, an address inside a private or reserved network; "
                                    "add the host to STAGEGATE_WEBHOOK_ALLOWED_HOSTS if it is meant.")
