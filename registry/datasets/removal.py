"""Data-removal requests: anyone may ask for text to be taken out of a published dataset; staff act on them."""

from django.db import transaction

from registry.models import DataRemovalRequest, OutputDataset
from registry.signals import removal_requested


@transaction.atomic
def removal_request_create(*, name: str, email: str, dataset: OutputDataset | None, text: str, reason: str,
                           ip: str | None = None) -> DataRemovalRequest:
    """Record the request and announce it (releases/ audits it and tells staff, through the outbox)."""
    request = DataRemovalRequest.objects.create(name=name, email=email, dataset=dataset, text=text, reason=reason,
                                                ip=ip)
    removal_requested.send(sender=DataRemovalRequest, request=request, ip=ip)
    return request
