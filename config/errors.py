"""The one base for domain errors; each carries its HTTP status and a machine-readable code."""

from contextlib import contextmanager

from django.db import IntegrityError, transaction


class DomainError(Exception):
    """A rule of the platform refused an operation. Subclasses set `code` and `http_status`."""

    code = "error"
    http_status = 400

    def __init__(self, message: str, *, code: str | None = None, **extra: object) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.extra = extra

    def as_json(self) -> dict:
        return {"error": self.code, "detail": self.message, **self.extra}


class NotFound(DomainError):
    code = "not_found"
    http_status = 404


class Conflict(DomainError):
    code = "conflict"
    http_status = 409


class ServiceUnavailable(DomainError):
    code = "service_unavailable"
    http_status = 503


@contextmanager
def duplicate_refused(error: DomainError):
    """Create rows in a savepoint, raising `error` when a unique constraint refuses them: the constraint, not an
    earlier "does it exist?" check, decides between two requests that arrive together."""
    try:
        with transaction.atomic():
            yield
    except IntegrityError:
        raise error from None
