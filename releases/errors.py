"""Release-governance errors, each mapped to its HTTP status through config.errors.DomainError."""

from config.errors import Conflict, DomainError, NotFound


class NotPolicyStaff(DomainError):
    code = "not_policy_staff"
    http_status = 403


class SelfApproval(DomainError):
    code = "self_approval"
    http_status = 403


class AlreadyDecided(Conflict):
    """This approver already approved the request: each approver counts once."""

    code = "already_decided"


class InvalidTransition(Conflict):
    code = "invalid_transition"


class StageConflict(Conflict):
    """The size is no longer in the request's from-stage."""

    code = "stage_conflict"


class RequestNotPending(Conflict):
    code = "request_not_pending"


class RequestNotApproved(Conflict):
    code = "request_not_approved"


class InvalidStageRequest(DomainError):
    code = "invalid"
    http_status = 400


class StageRequestNotFound(NotFound):
    code = "stage_request_not_found"


class NothingToReview(Conflict):
    code = "nothing_to_review"


# --------------------------------------------------------------------------- partners, grants and links
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
