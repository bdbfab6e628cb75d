"""Output datasets are release subjects: they move through the stages by requests and approvals like revisions,
each decision recording the splits' digests; samples of an internal revision need a public release's approvals."""

import pytest

from registry.models import OutputDataset
from releases.governance import stage_requests
from releases.governance.errors import InvalidTransition, SelfApproval
from releases.models import AuditEvent, StageChange
from releases.roles import NotPolicyStaff
from releases.stage_names import Stage
from tests.releases.conftest import ALL_FACTORS, RATIONALE, move, move_dataset


@pytest.fixture
def dataset(size):
    return OutputDataset.objects.create(name="mini-1m", kind="generated", model_size=size,
                                        revision=size.revisions.get(), max_length=32,
                                        sampling={"temperature": 1.0, "top_k": 0, "top_p": 1.0})


def _request(dataset, who, to_stage=Stage.PUBLIC):
    return stage_requests.stage_request_create(dataset=dataset, requester=who, to_stage=to_stage,
                                               rationale=RATIONALE, factors=ALL_FACTORS)


def test_a_dataset_of_a_public_revision_is_released_by_request_and_approvals(size, dataset, alice, bob, carol):
    move(size, Stage.PUBLIC, requester=alice, approvers=[bob, carol])
    request = move_dataset(dataset, Stage.PUBLIC, requester=alice, approvers=[bob, carol])
    assert request.subject["dataset"] == "mini-1m" and request.subject["revision"] == dataset.revision.revision
    change = StageChange.objects.get(dataset=dataset)
    assert (change.from_stage, change.to_stage, change.revision) == ("internal", "public", None)
    assert AuditEvent.objects.filter(action="stage.applied", target_type="registry.outputdataset").exists()


def test_samples_of_an_internal_revision_need_a_public_releases_approvals_even_for_partners(dataset, alice):
    assert dataset.revision.stage == Stage.INTERNAL
    assert _request(dataset, alice, Stage.PARTNERS).approvals_required == 2


def test_only_policy_staff_request_and_nobody_approves_their_own(dataset, alice, admin_user, rita):
    for actor in (admin_user, rita):
        with pytest.raises(NotPolicyStaff):
            _request(dataset, actor)
    request = _request(dataset, alice)
    with pytest.raises(SelfApproval):
        stage_requests.stage_request_approve(request=request, approver=alice)
    dataset.refresh_from_db()
    assert dataset.stage == Stage.INTERNAL


def test_a_public_dataset_is_withdrawn_like_a_revision(size, dataset, alice, bob, carol):
    move_dataset(dataset, Stage.PUBLIC, requester=alice, approvers=[bob, carol])
    with pytest.raises(InvalidTransition):
        _request(dataset, alice, Stage.PARTNERS)
    move_dataset(dataset, Stage.WITHDRAWN, requester=bob, approvers=[carol])
    assert [c.to_stage for c in StageChange.objects.filter(dataset=dataset).order_by("applied_at")] == [
        "public", "withdrawn"]


def test_the_dataset_api_takes_requests_for_staff(api, dataset, dora):
    api.force_authenticate(dora)
    response = api.post(f"/api/v1/datasets/{dataset.name}/stage-requests/",
                        {"to_stage": "public", "rationale": RATIONALE, "factors": ALL_FACTORS}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["dataset"] == "mini-1m" and response.json()["subject"]["dataset"] == "mini-1m"
    assert api.post("/api/v1/datasets/nope/stage-requests/", {}, format="json").status_code == 404
