"""Revisions and datasets as release subjects, and histories that answer "who could get what on date X".

Existing requests, decisions and applied changes become those of each size's revision 1, with the exact bytes
recorded; each published dataset gets its publication recorded as an applied change to public (historical);
issued links name the revision they opened. Memberships and partners' activation become histories, rebuilt
from the audit trail where rows were deleted before (a removed member, a deactivation). The audit trail itself
is not touched, so it verifies as before.
"""

from datetime import timedelta

from django.db import migrations


def _snapshot(revision, Artifact) -> dict:
    return {"revision": revision.revision, "number": revision.number,
            "files": [[a.filename, a.bytes, a.sha256] for a in Artifact.objects.filter(revision=revision)
                      .order_by("filename")]}


def subjects_and_histories(apps, schema_editor):
    Revision = apps.get_model("registry", "Revision")
    Artifact = apps.get_model("registry", "Artifact")
    OutputDataset = apps.get_model("registry", "OutputDataset")
    StageChangeRequest = apps.get_model("releases", "StageChangeRequest")
    StageDecision = apps.get_model("releases", "StageDecision")
    StageChange = apps.get_model("releases", "StageChange")
    IssuedLink = apps.get_model("releases", "IssuedLink")
    PartnerOrganisation = apps.get_model("releases", "PartnerOrganisation")
    PartnerActivity = apps.get_model("releases", "PartnerActivity")
    PartnerMember = apps.get_model("releases", "PartnerMember")
    AuditEvent = apps.get_model("releases", "AuditEvent")

    for revision in Revision.objects.all():  # each size has exactly its revision 1 here
        snapshot = _snapshot(revision, Artifact)
        requests = StageChangeRequest.objects.filter(model_size_id=revision.model_size_id)
        requests.update(revision=revision, subject=snapshot)
        StageDecision.objects.filter(request__in=requests).update(subject=snapshot)
        StageChange.objects.filter(model_size_id=revision.model_size_id).update(revision=revision, subject=snapshot)
        IssuedLink.objects.filter(model_size_id=revision.model_size_id).update(revision=revision)

    for dataset in OutputDataset.objects.filter(published_at__isnull=False):
        snapshot = {"dataset": dataset.name, "revision": None,
                    "splits": [[p.split, p.bytes, p.sha256] for p in dataset.splits.order_by("split")]}
        if dataset.revision_id:
            snapshot["revision"] = Revision.objects.get(pk=dataset.revision_id).revision
        request = StageChangeRequest.objects.create(
            model_size_id=dataset.model_size_id, dataset=dataset, subject=snapshot, from_stage="internal",
            to_stage="public", rationale="Published before datasets moved through stage requests.",
            status="applied", approvals_required=0, historical=True, decided_at=dataset.published_at,
            applied_at=dataset.published_at)
        StageChange.objects.create(
            model_size_id=dataset.model_size_id, dataset=dataset, subject=snapshot, request=request,
            from_stage="internal", to_stage="public", applied_at=dataset.published_at,
            review_by=(dataset.published_at + timedelta(days=183)).date())

    for partner in PartnerOrganisation.objects.all():
        PartnerActivity.objects.create(partner=partner, active=True, at=partner.created_at)
        for event in AuditEvent.objects.filter(target_type="releases.partnerorganisation", target_id=str(partner.pk),
                                               action__in=["partner.activated", "partner.deactivated"]).order_by("seq"):
            PartnerActivity.objects.create(partner=partner, active=event.action == "partner.activated", at=event.at)

    # Members removed before memberships kept their history: rebuilt from their audit events.
    joined: dict[tuple[str, int], object] = {}
    for event in AuditEvent.objects.filter(action__in=["partner.member_added", "partner.member_removed"]).order_by("seq"):
        key = (event.target_id, int(event.data["user_id"]))
        if event.action == "partner.member_added":
            joined[key] = event.at
        elif key in joined and not PartnerMember.objects.filter(partner_id=int(key[0]), user_id=key[1],
                                                                left_at__isnull=True).exists():
            PartnerMember.objects.create(partner_id=int(key[0]), user_id=key[1], added_at=joined.pop(key),
                                         left_at=event.at)


class Migration(migrations.Migration):
    dependencies = [("releases", "0008_revisions")]

    operations = [migrations.RunPython(subjects_and_histories, migrations.RunPython.noop)]
