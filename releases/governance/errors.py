"""Errors of release governance, each mapped to its HTTP status through config.errors.DomainError."""

from config.errors import Conflict, DomainError, NotFound


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
