"""What the release app does when the registry announces a change (registry/signals.py): every change to what
exists is an audit event, and data-removal requests reach staff through the outbox. Connected in apps.py."""

from django.dispatch import receiver

from registry.signals import artifact_registered, removal_requested
from releases.audit.chain import audit_record
from releases.governance import notifications


@receiver(artifact_registered, dispatch_uid="releases.audit_artifact_registered")
def audit_artifact_registered(*, artifact, replaced, actor, **_ignored) -> None:
    before = {"sha256": replaced.sha256, "bytes": replaced.bytes} if replaced is not None else None
    audit_record(actor=actor, action="artifact.replaced" if replaced is not None else "artifact.registered",
                 target=artifact.model_size, before=before,
                 after={"file": artifact.filename, "sha256": artifact.sha256, "bytes": artifact.bytes},
                 data={"artifact_id": artifact.pk, "training_run": artifact.training_run_id})


@receiver(removal_requested, dispatch_uid="releases.removal_requested")
def removal_request_recorded(*, request, ip, **_ignored) -> None:
    audit_record(actor=None, action="removal_request.created", target=request, ip=ip,
                 data={"dataset": request.dataset.name if request.dataset else None, "email": request.email})
    notifications.removal_request_notify(request=request)
