"""Purging a revision that was never released: the one way any stored object is ever deleted.

A revision that never left `internal` (no applied change ever moved it, no link was ever issued for it, no
dataset was sampled from it, no later revision grew from it) may be purged by policy staff with a reason: its
record goes, and so do the objects of its files that no other revision holds. Audited, with every file.
"""

import logging

from django.db import transaction

from config.errors import Conflict
from registry import storage
from registry.models import Artifact, EvalResult, Revision
from releases.access.models import IssuedLink
from releases.audit.chain import audit_record, target_of
from releases.governance.factors import rationale_validate
from releases.governance.models import StageChange, StageChangeRequest
from releases.roles import DECIDE_STAGE_CHANGE, require
from releases.stage_names import Stage

log = logging.getLogger(__name__)


class RevisionNotPurgeable(Conflict):
    code = "revision_not_purgeable"


def _refusal(revision: Revision) -> str | None:
    if revision.stage != Stage.INTERNAL or StageChange.objects.filter(revision=revision).exists():
        return "it has been released (its history must stay, with its bytes)"
    if IssuedLink.objects.filter(revision=revision).exists():
        return "links to its files have been issued"
    if revision.children.exists():
        return "later revisions grew from it"
    if revision.output_datasets.exists():
        return "datasets were sampled from it"
    if StageChangeRequest.objects.filter(revision=revision).exists():
        return "a stage-change request names it"
    if revision.model_size.revisions.count() == 1:
        return "it is the size's only revision"
    return None


@transaction.atomic
def revision_purge(*, revision: Revision, actor, reason: str, ip: str | None = None) -> list[str]:
    """Delete `revision` and the objects only it held; returns the deleted keys (deleted after the commit)."""
    require(actor, DECIDE_STAGE_CHANGE, to="purge revisions")
    reason = rationale_validate(reason)
    revision = Revision.objects.select_for_update().select_related("model_size").get(pk=revision.pk)
    if (why := _refusal(revision)) is not None:
        raise RevisionNotPurgeable(f"{revision} cannot be purged: {why}.")
    files = list(revision.artifacts.order_by("filename"))
    keys = {artifact.s3_key for artifact in files}
    orphaned = sorted(keys - set(Artifact.objects.filter(s3_key__in=keys).exclude(revision=revision)
                                 .values_list("s3_key", flat=True)))
    audit_record(actor=actor, action="revision.purged", target=target_of(revision), reason=reason, ip=ip,
                 before={"revision": revision.revision, "number": revision.number,
                         "files": [[a.filename, a.bytes, a.sha256] for a in files]},
                 data={"model": revision.model_size.slug, "objects_deleted": orphaned})
    EvalResult.objects.filter(revision=revision).delete()
    revision.artifacts.all().delete()
    revision.delete()
    transaction.on_commit(lambda: _objects_delete(orphaned))
    return orphaned


def _objects_delete(keys: list[str]) -> None:
    """After the commit: a key a revision registered since (the same bytes uploaded again) is kept; an object
    the store fails to delete is only wasted space, so it is logged rather than raised."""
    held = set(Artifact.objects.filter(s3_key__in=keys).values_list("s3_key", flat=True))
    for key in keys:
        if key in held:
            continue
        try:
            storage.delete(key)
        except Exception:
            log.exception("Could not delete %s after purging its revision; delete it by hand.", key)
