"""Job errors, mapped to HTTP statuses through config.errors.DomainError."""

from config.errors import Conflict, DomainError, NotFound, ServiceUnavailable


class JobParamsInvalid(DomainError):
    code = "invalid_job_params"
    http_status = 400


class JobNotFound(NotFound):
    code = "job_not_found"


class JobNotCancellable(Conflict):
    code = "job_not_cancellable"


class BrokerUnavailable(ServiceUnavailable):
    code = "broker_unavailable"


class JobLost(Exception):
    """The job was cancelled or taken over by another worker: stop working on it."""


class StudyMismatch(Conflict):
    """A study of that name exists with other settings: one name, one study."""

    code = "study_mismatch"
