"""What the release app does when the registry announces a change (registry/signals.py): every change to what
exists is an audit event, and data-removal requests reach staff through the outbox. Connected in apps.py."""

from django.dispatch import receiver

from registry.signals import record_changed, removal_requested, revision_created
from releases.audit.chain import audit_record
from releases.governance import notifications


@receiver(revision_created, dispatch_uid="releases.audit_revision_created")
def audit_revision_created(*, revision, actor, **_ignored) -> None:
    audit_record(actor=actor, action="revision.created", target=revision,
                 after={"revision": revision.revision, "number": revision.number,
                        "files": [[a.filename, a.bytes, a.sha256] for a in revision.artifacts.order_by("filename")]},
                 data={"model": revision.model_size.slug, "parent": revision.parent.revision if revision.parent else None,
                       "training_run": revision.training_run_id, "hparams": revision.hparams})


@receiver(removal_requested, dispatch_uid="releases.removal_requested")
def removal_request_recorded(*, request, ip, **_ignored) -> None:
    audit_record(actor=None, action="removal_request.created", target=request, ip=ip,
                 data={"dataset": request.dataset.name if request.dataset else None, "email": request.email})
    notifications.removal_request_notify(request=request)


@receiver(record_changed, dispatch_uid="releases.audit_record_changed")
def audit_record_changed(*, instance, action, actor, before, after, ip=None, data=None, **_ignored) -> None:
    audit_record(actor=actor, action=action, target=instance, before=before, after=after, ip=ip, data=data)
