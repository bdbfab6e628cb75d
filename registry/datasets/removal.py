"""Data-removal requests: anyone may ask for text to be taken out of a published dataset; staff act on them."""

from django.conf import settings
from django.core.mail import mail_admins

from registry.models import DataRemovalRequest, OutputDataset


def removal_request_create(*, name: str, email: str, dataset: OutputDataset | None, text: str, reason: str,
                           ip: str | None = None) -> DataRemovalRequest:
    request = DataRemovalRequest.objects.create(name=name, email=email, dataset=dataset, text=text, reason=reason,
                                                ip=ip)
    mail_admins(f"Data-removal request #{request.pk}",
                f"{name} <{email}> asks for text to be removed from {dataset.name if dataset else 'a dataset'}.\n"
                f"Review it at {settings.SITE_URL}/admin/registry/dataremovalrequest/{request.pk}/change/",
                fail_silently=True)
    return request
