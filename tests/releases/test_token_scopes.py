"""Token scopes (issue #20): a download token reaches downloads, the catalogue and the member's own records
only, optionally only named sizes; a governance token is for those who govern, and reaches what their role
allows."""

import pytest
from django.core.management import call_command

from releases.access import tokens
from releases.models import AuditEvent
from releases.roles import NotPermitted
from tests.releases.conftest import make_grant, make_partner, make_size, move, publish_terms, upload

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


@pytest.fixture
def sizes(s3, alice, bob, pat, tmp_path):
    """mini-1m and mini-3m at partners; pat's lab holds grants for both and accepted the terms."""
    lab = make_partner(alice, pat)
    publish_terms(alice, "v1", pat)
    made = []
    for slug in ("mini-1m", "mini-3m"):
        size = make_size(slug)
        upload(size, tmp_path)
        move(size, "partners", requester=alice, approvers=[bob])
        make_grant(lab, size, alice)
        made.append(size)
    return made


def _key(user, **kwargs) -> str:
    return tokens.token_create(user=user, name="t", expires_days=7, actor=user, **kwargs)[1]


def test_a_download_token_downloads_but_cannot_govern(api, sizes, alice, pat):
    api.credentials(HTTP_AUTHORIZATION=f"Token {_key(alice)}")  # staff, but a download token
    assert api.post("/api/v1/models/mini-1m/files/model.safetensors/link/").status_code == 200
    assert api.get("/api/v1/models/").status_code == 200
    refused = api.get("/api/v1/stage-requests/")
    assert refused.status_code == 403 and refused.json()["error"] == "token_scope"
    assert api.post("/api/v1/models/mini-1m/stage-requests/", {}, format="json").json()["error"] == "token_scope"
    assert api.get("/api/v1/jobs/").status_code == 403
    assert api.post("/api/v1/tokens/", {"name": "x", "scope": "governance"}, format="json").status_code == 403
    api.credentials(HTTP_AUTHORIZATION=f"Token {_key(alice, scope='governance')}")
    assert api.get("/api/v1/stage-requests/").status_code == 200
    api.credentials(HTTP_AUTHORIZATION=f"Token {_key(pat)}")
    assert api.get("/api/v1/grants/").status_code == 200 and api.get("/api/v1/terms/").status_code == 200


def test_a_token_limited_to_a_size_reaches_only_that_sizes_files(api, sizes, pat):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {_key(pat, sizes=['mini-3m'])}")
    assert api.get("/api/v1/models/mini-3m/manifest/").status_code == 200
    refused = api.get("/api/v1/models/mini-1m/manifest/")
    assert refused.status_code == 403 and "limited to mini-3m" in refused.json()["detail"]
    assert api.post("/api/v1/models/mini-1m/files/model.safetensors/link/").status_code == 403
    assert api.head("/mini/mini-3m/resolve/main/model.safetensors").status_code == 200  # the Hub protocol too
    assert api.head("/mini/mini-1m/resolve/main/model.safetensors").status_code == 403
    assert api.get("/api/v1/models/").status_code == 200  # the catalogue is not a size's files


def test_only_those_who_govern_get_governance_tokens_and_sizes_must_exist(sizes, pat, otto, rita):
    with pytest.raises(NotPermitted):
        _key(pat, scope="governance")
    with pytest.raises(NotPermitted):
        _key(rita, scope="governance")
    assert _key(otto, scope="governance")  # operators govern jobs
    with pytest.raises(Exception, match="No model size mini-99m"):
        _key(pat, sizes=["mini-99m"])
    event = AuditEvent.objects.filter(action="token.created").last()
    assert event.data["scope"] == "governance"


def test_the_operators_command_makes_download_tokens_unless_told(sizes, alice, api, capsys):
    call_command("create_token", "alice", "--size", "mini-1m")
    key = capsys.readouterr().out.strip()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert api.get("/api/v1/stage-requests/").status_code == 403
    assert api.get("/api/v1/models/mini-1m/manifest/").status_code == 200


def test_the_portal_offers_governance_tokens_to_staff_only(client, alice, pat):
    client.force_login(pat)
    assert 'value="governance"' not in client.get("/portal/").content.decode()
    client.force_login(alice)
    assert 'value="governance"' in client.get("/portal/").content.decode()


def test_a_size_limited_token_reaches_neither_another_sizes_details_nor_its_datasets(api, sizes, pat, alice, bob):
    from tests.datasets.conftest import register
    from tests.releases.conftest import move_dataset

    other = register("mini-1m-k40", size=sizes[0])
    mine = register("mini-3m-k40", size=sizes[1])
    for dataset in (other, mine):
        move_dataset(dataset, "partners", requester=alice, approvers=[bob])
    api.credentials(HTTP_AUTHORIZATION=f"Token {_key(pat, sizes=['mini-3m'])}")
    assert api.get("/api/v1/models/mini-3m/").status_code == 200
    assert api.get("/api/v1/models/mini-1m/").status_code == 403
    assert api.get("/api/v1/datasets/mini-3m-k40/").status_code == 200
    assert api.get("/api/v1/datasets/mini-1m-k40/").status_code == 404  # as if it did not exist
    assert api.post("/api/v1/datasets/mini-1m-k40/test/link/").status_code == 404
    assert api.get("/gpt-2/output-dataset/v1/mini-1m-k40.test.jsonl").status_code == 404
    assert api.get("/api/datasets/mini/mini-1m-k40").status_code == 404
    assert api.get("/api/datasets/mini/mini-3m-k40").status_code == 200


def test_a_token_that_is_not_utf8_is_refused_not_a_crash(api, db):
    api.credentials(HTTP_AUTHORIZATION=b"Token \xff\xfe".decode("latin-1"))
    assert api.get("/api/v1/grants/").status_code == 401
