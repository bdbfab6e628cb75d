"""Celery tasks of the registry: each loads its records by id and calls a service."""

from celery import shared_task

from registry import revisions
from registry.models import Artifact


@shared_task(acks_late=True)
def verify_artifact_task(artifact_id: int) -> bool:
    """Check that a stored file still has the bytes and sha256 the registry recorded (read-only, so idempotent)."""
    artifact = Artifact.objects.get(pk=artifact_id)
    return revisions.artifact_verify(artifact=artifact)
