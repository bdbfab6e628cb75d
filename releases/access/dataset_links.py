"""Signed links to output-dataset splits, with the guarantees of the weights' links (releases/links.py).

`access.may_dataset` decides; storage is asked before anything is written (S3 down → 503, nothing recorded,
once the storage check window has passed);
every link is audited as `dataset_link.issued` (dataset, split, IP, expiry — never the URL).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from registry import storage
from registry.datasets.errors import DatasetNotFound, SplitNotFound
from registry.models import DatasetSplit, OutputDataset
from releases.access import rules as access
from releases.access.links import link_ttl_s, storage_check_window_s
from releases.audit.chain import audit_record


@dataclass(frozen=True)
class DatasetLink:
    split: DatasetSplit
    expires_at: datetime
    url: str  # handed to the caller only; never stored or logged


def dataset_link_issue(*, user, name: str, split: str, ip: str | None = None) -> DatasetLink:
    """As `links.link_issue`: decide, ask storage and sign outside any lock, then decide again with the
    dataset row locked (an unpublication committed meanwhile is seen, a later one waits) and audit."""
    dataset, _decision = _decided(user, name, lock=False)
    # Only a known split name reaches the query (a NUL byte would make PostgreSQL fail with a 500).
    part = DatasetSplit.objects.filter(dataset=dataset, split=split).first() if split in DatasetSplit.SPLITS else None
    if part is None:
        raise SplitNotFound(f"{dataset.name} has no split {split!r} (splits: train, valid, test).")
    # StorageUnavailable (503) / ObjectMissing (404) before any write
    storage.head_recent(part.s3_key, within_s=storage_check_window_s())
    ttl_s = link_ttl_s()
    expires_at = timezone.now() + timedelta(seconds=ttl_s)
    url = storage.presign_get(part.s3_key, ttl_s=ttl_s, download_name=part.filename)
    authenticated = user is not None and user.is_authenticated
    with transaction.atomic():
        dataset, decision = _decided(user, name, lock=True)
        audit_record(
            actor=user if authenticated else None, action="dataset_link.issued", target=dataset, ip=ip,
            data={"dataset": dataset.name, "split": part.split, "file": part.filename,
                  "basis": decision.reason,
                  "expires_at": expires_at.isoformat(), "anonymous": not authenticated},
        )
    return DatasetLink(split=part, expires_at=expires_at, url=url)


def _decided(user, name: str, *, lock: bool) -> tuple[OutputDataset, access.Decision]:
    datasets = OutputDataset.objects.select_for_update() if lock else OutputDataset.objects
    dataset = datasets.filter(name=name).first()
    if dataset is None:
        raise DatasetNotFound(f"No dataset {name!r}.")
    decision = access.may_dataset(user, dataset, access.DATASET_DOWNLOAD)
    return dataset, access.require_dataset(decision, dataset=dataset)
