"""The Hub protocol at the HTTP level, in process: the answers the clients rely on, and hostile input."""

import pytest

from releases.models import IssuedLink
from tests.datasets.conftest import register
from tests.releases.conftest import make_size, move, move_dataset, token_for, upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def public(s3, tmp_path, alice, bob, carol):
    size = make_size("mini-1m")
    artifact = upload(size, tmp_path)
    move(size, "public", requester=alice, approvers=[bob, carol])
    return size, artifact


def test_info_tree_and_paths_info_describe_the_files_as_lfs_files(api, public):
    size, artifact = public
    commit = artifact.revision.revision
    info = api.get("/api/models/mini/mini-1m").json()
    assert (info["id"], info["sha"], info["gated"], info["private"]) == ("mini/mini-1m", commit, False, False)
    assert info["siblings"][0]["lfs"] == {"sha256": artifact.sha256, "size": artifact.bytes,
                                          "pointerSize": info["siblings"][0]["lfs"]["pointerSize"]}
    assert api.get(f"/api/models/mini/mini-1m/revision/{commit}").json()["sha"] == commit
    tree = api.get("/api/models/mini/mini-1m/tree/main").json()
    assert [(e["type"], e["path"], e["size"], e["lfs"]["oid"]) for e in tree] == [
        ("file", "model.safetensors", artifact.bytes, artifact.sha256)]
    assert api.get("/api/models/mini/mini-1m/tree/main/some/folder").headers["X-Error-Code"] == "EntryNotFound"
    found = api.post(f"/api/models/mini/mini-1m/paths-info/{commit}",
                     {"paths": ["model.safetensors", "missing.json"]}, format="json").json()
    assert [entry["path"] for entry in found] == ["model.safetensors"]
    form = api.post("/api/models/mini/mini-1m/paths-info/main", "paths=model.safetensors",
                    content_type="application/x-www-form-urlencoded").json()
    assert [entry["path"] for entry in form] == ["model.safetensors"]
    bad = api.post("/api/models/mini/mini-1m/paths-info/main", {"paths": {"a": 1}}, format="json")
    assert bad.status_code == 400 and "paths" in bad.json()["error"]


@pytest.mark.parametrize("url", [
    "/api/models/mini/mini-1m/revision/%00",
    "/api/models/mini/mini-1m/revision/" + "g" * 40,
    "/api/models/mini/mini-1m/revision/refs%2Fpr%2F1",
    "/api/models/mini%00/mini-1m",
    "/api/models/mini/..",
    "/api/models/mini/mini-1m%00",
    "/mini/mini-1m/resolve/main/%00",
    "/mini/mini-1m/resolve/main/../../etc/passwd",
    "/mini/mini-1m/resolve/" + "a" * 41 + "/model.safetensors",
    "/datasets/mini/%00/resolve/main/x.jsonl",
    "/api/datasets/mini/mini-1m/tree/main/%00",
])
def test_hostile_input_is_a_hub_error_never_a_crash(api, public, url):
    response = api.get(url)
    assert response.status_code in (400, 404)
    assert response["X-Error-Code"] in ("RepoNotFound", "RevisionNotFound", "EntryNotFound")
    assert response.json()["error"]
    assert IssuedLink.objects.count() == 0


def test_an_internal_size_looks_like_no_size_at_all_even_to_a_token(api, s3, tmp_path, pat):
    upload(make_size("mini-2m"), tmp_path)
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(pat)}")
    hidden = api.get("/api/models/mini/mini-2m")
    missing = api.get("/api/models/mini/mini-9m")
    assert (hidden.status_code, hidden["X-Error-Code"], hidden.json()) == (
        missing.status_code, missing["X-Error-Code"], missing.json())


def test_a_withdrawn_size_is_gone_and_its_revision_unknown(api, public, alice, bob, carol):
    size, artifact = public
    move(size, "withdrawn", requester=alice, approvers=[bob])
    assert api.get("/api/models/mini/mini-1m")["X-Error-Code"] == "RepoNotFound"
    revision = api.head(f"/mini/mini-1m/resolve/{artifact.revision.revision}/model.safetensors")
    assert (revision.status_code, revision["X-Error-Code"]) == (404, "RevisionNotFound")


def test_reference_text_is_found_under_any_family_and_generated_text_under_its_own(api, public, alice, bob,
                                                                                     carol):
    size, _artifact = public
    reference = register("webtext-reference")
    generated = register("mini-1m-k40", size=size)
    other = make_size("other-1m", family_slug="other")
    for dataset in (reference, generated):
        move_dataset(dataset, "public", requester=alice, approvers=[bob, carol])
    assert api.get("/api/datasets/mini/webtext-reference").status_code == 200
    assert api.get(f"/api/datasets/{other.family.slug}/webtext-reference").status_code == 200
    assert api.get("/api/datasets/nofamily/webtext-reference")["X-Error-Code"] == "RepoNotFound"
    assert api.get("/api/datasets/mini/mini-1m-k40").json()["sha"]
    assert api.get(f"/api/datasets/{other.family.slug}/mini-1m-k40")["X-Error-Code"] == "RepoNotFound"
    head = api.head("/datasets/mini/mini-1m-k40/resolve/main/mini-1m-k40.valid.jsonl")
    part = generated.splits.get(split="valid")
    assert head.status_code == 200 and head["X-Linked-Etag"] == f'"{part.sha256}"'
    assert head["X-Repo-Commit"] == api.get("/api/datasets/mini/mini-1m-k40").json()["sha"]


def test_the_hub_routes_are_not_in_the_api_schema(api):
    paths = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()["paths"]
    assert not [path for path in paths if "resolve" in path or path.startswith("/api/models/{namespace}")]


def test_the_hub_takes_tokens_only_so_another_site_cannot_spend_a_partners_quota(s3, tmp_path, alice, bob, pat, client):
    """A signed-in partner's browser, sent to a resolve URL by another site, is anonymous here."""
    from tests.releases.conftest import make_grant, make_partner, publish_terms, token_for

    size = make_size("mini-3m")
    upload(size, tmp_path)
    move(size, "partners", requester=alice, approvers=[bob])
    make_grant(make_partner(alice, pat), size, alice)
    publish_terms(alice, "v1", pat)
    client.force_login(pat)
    by_session = client.get("/mini/mini-3m/resolve/main/model.safetensors")
    assert by_session.status_code == 401 and by_session["X-Error-Code"] == "GatedRepo"
    assert IssuedLink.objects.count() == 0
    by_token = client.get("/mini/mini-3m/resolve/main/model.safetensors", HTTP_AUTHORIZATION=f"Bearer {token_for(pat)}")
    assert by_token.status_code == 302 and IssuedLink.objects.count() == 1


def test_a_refusal_whose_reason_has_line_breaks_is_still_a_hub_error(s3, tmp_path, alice, bob, pat, api):
    from releases.access import grants as grant_service
    from tests.releases.conftest import make_grant, make_partner, publish_terms, token_for

    size = make_size("mini-3m")
    upload(size, tmp_path)
    move(size, "partners", requester=alice, approvers=[bob])
    grant = make_grant(make_partner(alice, pat), size, alice)
    publish_terms(alice, "v1", pat)
    grant_service.grant_revoke(grant=grant, actor=alice, reason="Breach of terms.\r\nSee the letter.")
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(pat)}")
    answer = api.head("/mini/mini-3m/resolve/main/model.safetensors")
    assert answer.status_code == 403 and answer["X-Error-Code"] == "GatedRepo"
    assert "grant_revoked" in answer["X-Error-Message"] and "\r" not in answer["X-Error-Message"]
