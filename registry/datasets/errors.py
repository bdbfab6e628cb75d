"""Errors of the dataset API, each mapped to its HTTP status through config.errors.DomainError."""

from config.errors import NotFound


class DatasetNotFound(NotFound):
    """No such dataset, or one not published (its existence is not revealed to the public)."""

    code = "dataset_not_found"


class SplitNotFound(NotFound):
    code = "split_not_found"
