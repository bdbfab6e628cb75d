"""GET /api/v1/datasets/ and /api/v1/datasets/{name}/: anonymous, published only."""

import pytest

pytestmark = pytest.mark.integration


def test_anonymous_callers_see_only_published_datasets(api, datasets):
    response = api.get("/api/v1/datasets/")
    assert response.status_code == 200
    names = [d["name"] for d in response.json()["results"]]
    assert names == ["mini-1m", "mini-1m-k40", "mini-1m-reference"]


def test_a_dataset_has_its_splits_statistics_detection_and_card(api, datasets):
    body = api.get("/api/v1/datasets/mini-1m-k40/").json()
    part = datasets["mini-1m-k40"].splits.get(split="test")
    assert body["kind"] == "generated" and body["model_size"] == "mini-1m"
    assert body["sampling"] == {"temperature": 1.0, "top_k": 40, "top_p": 1.0}
    assert [s["split"] for s in body["splits"]] == ["test", "train", "valid"]
    assert body["splits"][0] == {"split": "test", "filename": "mini-1m-k40.test.jsonl", "lines": 6,
                                 "bytes": part.bytes, "sha256": part.sha256}
    assert body["statistics"]["lines"] == 52 and len(body["statistics"]["length_histogram"]) == 16
    assert 0 < body["statistics"]["fraction_ended"] < 1
    assert body["detection"]["accuracy"] == 0.93 and body["detection"]["reference"] == "mini-1m-reference"
    assert body["card"] == "Test dataset mini-1m-k40." and body["stage"] == "public"
    assert body["revision"] == datasets["mini-1m-k40"].revision.revision


def test_a_reference_dataset_has_no_size_and_no_sampling(api, datasets):
    body = api.get("/api/v1/datasets/mini-1m-reference/").json()
    assert (body["kind"], body["model_size"], body["sampling"], body["detection"]) == ("reference", None, None, None)


def test_an_unpublished_dataset_is_404_like_one_that_does_not_exist(api, datasets, rita):
    missing = api.get("/api/v1/datasets/no-such-dataset/")
    assert missing.status_code == 404
    for user in (None, rita):
        api.force_authenticate(user)
        response = api.get("/api/v1/datasets/mini-1m-draft/")
        assert response.status_code == 404
        assert response.json() == {"error": "dataset_not_found", "detail": "No dataset 'mini-1m-draft'."}
        assert missing.json()["error"] == "dataset_not_found"


def test_staff_see_unpublished_datasets_to_check_them_before_deciding(api, datasets, alice):
    api.force_authenticate(alice)
    assert api.get("/api/v1/datasets/mini-1m-draft/").json()["stage"] == "internal"
    assert "mini-1m-draft" in [d["name"] for d in api.get("/api/v1/datasets/").json()["results"]]
