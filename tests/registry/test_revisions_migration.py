"""The migration to revisions, run on a database holding a demo's kind of data: each size's files become its
revision 1 at the stage it had (keys unchanged), every request, decision, applied change and issued link names
that revision with its digests, published datasets become public with their publication on record, partner and
membership histories are rebuilt from the audit trail, and the audit trail still verifies."""

from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from registry.revision_ids import revision_id
from releases.audit.chain import GENESIS_HASH, event_hash
from releases.audit.verify import audit_verify

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("registry", "0003_data_removal_request"), ("releases", "0007_token_verified"),
          ("workers", "0003_job_cancel_permission")]
HPARAMS = {"n_vocab": 512, "n_ctx": 64, "n_embd": 32, "n_head": 2, "n_layer": 2}


class _Chain:
    """Audit rows written as the platform wrote them before revisions (hash-chained)."""

    def __init__(self, AuditEvent) -> None:
        self.model, self.seq, self.prev = AuditEvent, 0, GENESIS_HASH

    def add(self, action: str, target_type: str, target_id, at, data: dict | None = None) -> None:
        self.seq += 1
        event = self.model(seq=self.seq, at=at, actor_id="", actor_label="system", action=action,
                           target_type=target_type, target_id=str(target_id), target_label=action, before=None,
                           after=None, reason="", ip=None, data=data or {}, prev_hash=self.prev)
        event.hash = event_hash(event)
        event.save()
        self.prev = event.hash


def _old_demo(apps) -> dict:
    User = apps.get_model("auth", "User")
    get = apps.get_model
    now = timezone.now()
    alice, bob, pat, quinn = (User.objects.create(username=name) for name in ("alice", "bob", "pat", "quinn"))
    family = get("registry", "ModelFamily").objects.create(slug="mini", name="Mini", bundled=True)
    Size = get("registry", "ModelSize")
    public = Size.objects.create(family=family, slug="mini-1m", display_name="1m", stage="public", **HPARAMS)
    record = Size.objects.create(family=family, slug="gpt2-124m", display_name="124M", stage="public", **HPARAMS)
    Artifact = get("registry", "Artifact")
    files = [("config.json", 20, "a" * 64), ("model.safetensors", 9000, "b" * 64)]
    for name, size, sha in files:
        Artifact.objects.create(model_size=public, filename=name, s3_key=f"models/mini-1m/0123/{name}", bytes=size,
                                sha256=sha, format="json" if name.endswith("json") else "safetensors")
    Request = get("releases", "StageChangeRequest")
    request = Request.objects.create(model_size=public, from_stage="internal", to_stage="public", rationale="r" * 50,
                                     status="applied", approvals_required=1, requested_by=alice, applied_at=now)
    get("releases", "StageDecision").objects.create(request=request, decided_by=bob, verdict="approve")
    get("releases", "StageChange").objects.create(model_size=public, request=request, from_stage="internal",
                                                  to_stage="public", applied_at=now, review_by=now.date())
    dataset = get("registry", "OutputDataset").objects.create(name="mini-1m", kind="generated", model_size=public,
                                                              max_length=32, published_at=now)
    get("registry", "DatasetSplit").objects.create(dataset=dataset, split="valid", lines=3, s3_key="datasets/x",
                                                   bytes=30, sha256="c" * 64)
    Partner = get("releases", "PartnerOrganisation")
    lab = Partner.objects.create(name="Lab", kind="security", active=False)
    get("releases", "PartnerMember").objects.create(partner=lab, user=pat)
    get("releases", "IssuedLink").objects.create(issued_at=now, expires_at=now, model_size=public, filename="config.json",
                                                 bytes=20, sha256="a" * 64, basis="public")
    chain = _Chain(get("releases", "AuditEvent"))
    chain.add("partner.member_added", "releases.partnerorganisation", lab.pk, now + timedelta(hours=1),
              {"user_id": quinn.pk, "username": "quinn"})
    chain.add("partner.member_removed", "releases.partnerorganisation", lab.pk, now + timedelta(hours=2),
              {"user_id": quinn.pk, "username": "quinn"})
    chain.add("partner.deactivated", "releases.partnerorganisation", lab.pk, now + timedelta(hours=3))
    return {"public": public.pk, "record": record.pk, "files": files, "dataset": dataset.pk, "lab": lab.pk,
            "quinn": quinn.pk, "published_at": now, "events": chain.seq}


def test_the_demos_data_migrates_to_revisions_and_its_audit_trail_still_verifies():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = _old_demo(executor.loader.project_state(BEFORE).apps)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    from registry.models import Artifact, ModelSize, OutputDataset
    from releases.models import (
        IssuedLink,
        PartnerActivity,
        PartnerMember,
        StageChange,
        StageChangeRequest,
        StageDecision,
    )

    public = ModelSize.objects.get(pk=old["public"])
    [revision] = public.revisions.all()
    assert (revision.number, revision.stage) == (1, "public")
    assert revision.revision == revision_id(old["files"], HPARAMS)
    assert set(Artifact.objects.filter(revision=revision).values_list("s3_key", flat=True)) == {
        "models/mini-1m/0123/config.json", "models/mini-1m/0123/model.safetensors"}  # referenced where they are
    [empty] = ModelSize.objects.get(pk=old["record"]).revisions.all()
    assert (empty.stage, empty.artifacts.count()) == ("public", 0)  # the record without files keeps its stage

    request = StageChangeRequest.objects.get(model_size=public, dataset=None)
    assert request.revision == revision and request.subject["files"] == [list(f) for f in old["files"]]
    assert StageDecision.objects.get(request=request).subject["revision"] == revision.revision
    assert StageChange.objects.get(request=request).revision == revision
    assert IssuedLink.objects.get().revision == revision

    dataset = OutputDataset.objects.get(pk=old["dataset"])
    assert (dataset.stage, dataset.revision) == ("public", revision)
    publication = StageChange.objects.get(dataset=dataset)
    assert (publication.to_stage, publication.applied_at, publication.request.historical) == (
        "public", old["published_at"], True)

    assert list(PartnerActivity.objects.filter(partner_id=old["lab"]).values_list("active", flat=True)) == [True, False]
    former = PartnerMember.objects.get(user_id=old["quinn"])
    assert former.left_at is not None and former.added_at < former.left_at
    report = audit_verify(copies=False)  # seals them under the first signed checkpoint
    assert (report.events, report.checkpoints, report.problem) == (old["events"], 1, None)
