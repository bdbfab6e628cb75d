"""Which API token the current request acts through, so every audit row it writes names the token as well as
the user: a decision made with a stolen or misused key can be traced to that key and revoked.

Set by the token authentication (releases/access/authentication.py) and cleared around every request by
AuditContextMiddleware, so nothing carries over between requests a worker thread serves.
"""

from contextvars import ContextVar

_acting_token: ContextVar[str | None] = ContextVar("stagegate_acting_token", default=None)


def acting_token() -> str | None:
    """The public key prefix (knox's token_key) of the token this request authenticated with, if any."""
    return _acting_token.get()


def acting_token_set(token_key: str | None) -> None:
    _acting_token.set(token_key)


class AuditContextMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        reset = _acting_token.set(None)
        try:
            return self.get_response(request)
        finally:
            _acting_token.reset(reset)
