"""Errors of partner access, grants and links, each mapped to its HTTP status through config.errors.DomainError."""

from config.errors import Conflict, DomainError


class AccessDenied(DomainError):
    """`may` said no; `code` is its reason (no_grant, grant_revoked, terms_not_accepted, withdrawn, …)."""

    code = "access_denied"
    http_status = 403


class AuthenticationRequired(DomainError):
    code = "not_authenticated"
    http_status = 401
    headers = {"WWW-Authenticate": "Token"}


class QuotaExhausted(DomainError):
    code = "quota_exhausted"
    http_status = 429

    def __init__(self, message: str, *, retry_after_s: int, **extra: object) -> None:
        super().__init__(message, retry_after_s=retry_after_s, **extra)
        self.headers = {"Retry-After": str(retry_after_s)}


class InvalidPartnerAction(DomainError):
    code = "invalid"
    http_status = 400


class AccessRequestNotPending(Conflict):
    code = "access_request_not_pending"


class GrantAlreadyRevoked(Conflict):
    code = "grant_already_revoked"


class GrantAlreadyHeld(Conflict):
    code = "grant_already_held"


def required_text(value: str, field: str, message: str, *, max_chars: int | None = None) -> str:
    """A text a person typed, stripped: `message` when it is empty; refused, never a database error, when it holds a
    NUL character (PostgreSQL stores none) or is longer than its column."""
    text = (value or "").strip() if isinstance(value, str) else ""
    if not text:
        raise InvalidPartnerAction(message, fields={field: ["This field is required."]})
    if "\x00" in text:
        raise InvalidPartnerAction(f"{field}: null characters are not allowed.", fields={field: ["Null character."]})
    if max_chars is not None and len(text) > max_chars:
        raise InvalidPartnerAction(f"{field}: at most {max_chars:,} characters.",
                                   fields={field: [f"At most {max_chars:,} characters."]})
    return text
