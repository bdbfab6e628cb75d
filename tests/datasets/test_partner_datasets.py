"""A dataset at the partners stage is for members of organisations holding a grant for its size: a partner gets
its files, a researcher gets 404 (as for no dataset), and once public the catalogue and the 2019 path serve it."""

import pytest
import requests

from tests.datasets.conftest import register
from tests.releases.conftest import make_grant, make_partner, move_dataset, publish_terms, token_for

pytestmark = pytest.mark.integration


@pytest.fixture
def pat(django_user_model):
    """A member of the lab holding a grant for the dataset's size."""
    return django_user_model.objects.create_user(username="pat", password="pw-pat")


@pytest.fixture
def partners_dataset(datasets, public_size, alice, bob, carol, pat):
    dataset = register("mini-1m-held", size=public_size)
    partner = make_partner(alice, pat)
    publish_terms(alice, "v1", pat)
    make_grant(partner, public_size, alice)
    move_dataset(dataset, "partners", requester=alice, approvers=[bob])
    return dataset


def test_a_partner_with_a_grant_gets_a_partners_datasets_files(api, partners_dataset, pat):
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(pat)}")
    assert api.get("/api/v1/datasets/mini-1m-held/").status_code == 200
    assert "mini-1m-held" in [d["name"] for d in api.get("/api/v1/datasets/").json()["results"]]
    link = api.post("/api/v1/datasets/mini-1m-held/valid/link/")
    assert link.status_code == 200
    content = requests.get(link.json()["url"], timeout=10).content
    assert content and partners_dataset.splits.get(split="valid").bytes == len(content)


@pytest.mark.parametrize("who", ["anonymous", "rita"])
def test_a_researcher_or_an_anonymous_caller_gets_404(api, partners_dataset, who, request):
    if who != "anonymous":
        api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(request.getfixturevalue(who))}")
    for response in (api.get("/api/v1/datasets/mini-1m-held/"), api.post("/api/v1/datasets/mini-1m-held/valid/link/"),
                     api.get("/gpt-2/output-dataset/v1/mini-1m-held.valid.jsonl")):
        assert response.status_code == 404 and response.json()["error"] == "dataset_not_found"
    assert "mini-1m-held" not in [d["name"] for d in api.get("/api/v1/datasets/").json()["results"]]


def test_a_member_without_the_terms_is_told_why(api, partners_dataset, alice):
    from releases.access import partners

    partners.terms_publish(version="v2", text="New terms.", actor=alice)
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(partners_dataset.model_size.grants.get().partner.members.get().user)}")
    response = api.post("/api/v1/datasets/mini-1m-held/valid/link/")
    assert response.status_code == 403 and response.json()["error"] == "terms_not_accepted"


def test_once_public_the_compatibility_path_serves_it_to_anyone(api, partners_dataset, alice, bob, carol):
    move_dataset(partners_dataset, "public", requester=alice, approvers=[bob, carol])
    response = api.get("/gpt-2/output-dataset/v1/mini-1m-held.valid.jsonl")
    assert response.status_code == 302
    assert requests.get(response["Location"], timeout=10).status_code == 200
