"""Release decisions for output datasets: only published datasets are public, and publishing is audited.

Samples of a size that is not public may still be published (GPT-2's samples of its unreleased sizes
were), but only as an explicit staff decision with a written reason. Withdrawing a size never hides its
published datasets silently: staff unpublish them, also with a reason.
"""

from django.db import transaction
from django.utils import timezone

from config.errors import Conflict, DomainError
from registry.models import ModelSize, OutputDataset
from releases.audit.chain import audit_record
from releases.governance.factors import rationale_validate
from releases.roles import PUBLISH_DATASET, require
from releases.stage_names import Stage


class UnreleasedSizeNeedsDecision(DomainError):
    code = "size_not_public"
    http_status = 409


class PublicationConflict(Conflict):
    code = "publication_conflict"


@transaction.atomic
def dataset_publish(*, dataset: OutputDataset, actor, reason: str = "", despite_unreleased_size: bool = False,
                    ip: str | None = None) -> OutputDataset:
    require(actor, PUBLISH_DATASET, to="publish datasets")
    # The stage as stored now, not as the caller's copy remembers it.
    size = ModelSize.objects.filter(pk=dataset.model_size_id).first()
    size_stage = size.stage if size is not None else None
    if size is not None and size_stage != Stage.PUBLIC:
        if not despite_unreleased_size:
            raise UnreleasedSizeNeedsDecision(
                f"{size.slug} is {size_stage}: publishing its samples needs an explicit decision with a reason.",
                model_size=size.slug, stage=size_stage,
            )
        reason = rationale_validate(reason)
    now = timezone.now()
    if OutputDataset.objects.filter(pk=dataset.pk, published_at=None).update(published_at=now) != 1:
        raise PublicationConflict(f"{dataset.name} is already published.")
    audit_record(actor=actor, action="dataset.published", target=dataset, before={"published": False},
                 after={"published": True}, reason=reason, ip=ip,
                 data={"model_size": size.slug if size else None, "size_stage": size_stage,
                       "despite_unreleased_size": despite_unreleased_size})
    dataset.refresh_from_db()
    return dataset


@transaction.atomic
def dataset_unpublish(*, dataset: OutputDataset, actor, reason: str, ip: str | None = None) -> OutputDataset:
    require(actor, PUBLISH_DATASET, to="unpublish datasets")
    reason = rationale_validate(reason)
    if OutputDataset.objects.filter(pk=dataset.pk, published_at__isnull=False).update(published_at=None) != 1:
        raise PublicationConflict(f"{dataset.name} is not published.")
    audit_record(actor=actor, action="dataset.unpublished", target=dataset, before={"published": True},
                 after={"published": False}, reason=reason, ip=ip)
    dataset.refresh_from_db()
    return dataset
