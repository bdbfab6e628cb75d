"""Datasets in the admin: their data read-only; their stage moved only by requests (the release admin)."""

import pytest

from registry.models import OutputDataset
from releases.models import StageChangeRequest

pytestmark = pytest.mark.integration
URL = "/admin/releases/datasetpublication/"


def test_the_release_view_of_a_dataset_shows_its_stage_and_leads_to_a_request(client, datasets, alice):
    client.force_login(alice)
    draft = datasets["mini-1m-draft"]
    page = client.get(f"{URL}{draft.pk}/change/").content.decode()
    assert "Internal" in page and f"?dataset={draft.pk}" in page
    form = client.get(f"/admin/releases/stagechangerequest/add/?dataset={draft.pk}").content.decode()
    assert f'<option value="{draft.pk}" selected>' in form


def test_a_dataset_request_is_filed_from_the_admin_form(client, datasets, alice):
    from tests.releases.conftest import RATIONALE

    client.force_login(alice)
    draft = datasets["mini-1m-draft"]
    response = client.post("/admin/releases/stagechangerequest/add/", {
        "dataset": draft.pk, "to_stage": "public", "rationale": RATIONALE,
        **{f"factor_{key}": "Assessed." for key in (
            "ease_of_generation", "role_of_humans", "replication", "misuse_evidence", "proofs_of_concept",
            "beneficial_demand", "stakeholder_input")}})
    assert response.status_code == 302, response.content.decode()[:2000]
    request = StageChangeRequest.objects.get(dataset=draft)
    assert request.subject["dataset"] == "mini-1m-draft" and request.from_stage == "internal"
    assert OutputDataset.objects.get(pk=draft.pk).stage == "internal"  # until approved


def test_dataset_data_is_read_only_in_the_admin(client, datasets, alice):
    client.force_login(alice)
    page = client.get(f"/admin/registry/outputdataset/{datasets['mini-1m'].pk}/change/").content.decode()
    assert "mini-1m" in page and 'name="card"' not in page and 'name="stage"' not in page
    assert client.get("/admin/registry/datasetsplit/").status_code == 200
    assert client.get("/admin/registry/detectionresult/").status_code == 200
