"""Registry errors, each mapped to its HTTP status through config.errors.DomainError."""

from config.errors import Conflict, DomainError, NotFound


class ModelSizeNotFound(NotFound):
    code = "model_size_not_found"


class ArtifactNotFound(NotFound):
    code = "file_not_found"


class ArtifactExists(Conflict):
    code = "artifact_exists"


class UnsafeWeights(DomainError):
    """A weights file refused before storing: a pickle, a malformed safetensors file, or the wrong shapes."""

    code = "unsafe_weights"


class RevisionNotFound(NotFound):
    code = "revision_not_found"
