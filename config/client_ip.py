"""The address a request came from: for audit rows, rate limits and the login lockout."""


def client_ip(request) -> str | None:
    """The address the request came from, for audit rows. REMOTE_ADDR only: forwarded headers are
    client-controlled unless a trusted proxy rewrites them, and that proxy sets REMOTE_ADDR."""
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None
