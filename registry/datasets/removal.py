"""Data-removal requests: anyone may ask for text to be taken out of a published dataset; staff act on them."""

from django.db import transaction

from registry.changes import record_save
from registry.models import DataRemovalRequest, OutputDataset
from registry.signals import removal_requested

# What staff change on a request; what the requester sent never changes.
HANDLING_FIELDS = ("status", "staff_notes")


@transaction.atomic
def removal_request_create(*, name: str, email: str, dataset: OutputDataset | None, text: str, reason: str,
                           ip: str | None = None) -> DataRemovalRequest:
    """Record the request and announce it (releases/ audits it and tells staff, through the outbox)."""
    request = DataRemovalRequest.objects.create(name=name, email=email, dataset=dataset, text=text, reason=reason,
                                                ip=ip)
    removal_requested.send(sender=DataRemovalRequest, request=request, ip=ip)
    return request


def removal_request_handle(*, request: DataRemovalRequest, actor, ip: str | None = None) -> DataRemovalRequest:
    """Save staff's handling of a request (`request` holds the new status and notes), announced as
    `removal_request.updated` with what they were before; anything else the instance holds is not written."""
    record_save(request, noun="removal_request", fields=HANDLING_FIELDS, actor=actor, ip=ip,
                data={"dataset": request.dataset.name if request.dataset else None})
    return request
