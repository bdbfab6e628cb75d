"""GET /gpt-2/output-dataset/v1/{dataset}.{split}.jsonl: OpenAI's 2019 layout, answered with a signed redirect."""

import hashlib

import pytest
import requests

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def fetch_like_the_2019_script(base_url: str, filename: str) -> tuple[int, bytes]:
    """What openai/gpt-2-output-dataset's download script does: size a progress bar from Content-Length."""
    response = requests.get(f"{base_url}/gpt-2/output-dataset/v1/{filename}", stream=True, timeout=30)
    assert response.status_code == 200
    size = int(response.headers["content-length"])
    data = b"".join(response.iter_content(chunk_size=1000))
    return size, data, response


def test_a_script_written_for_the_2019_bucket_works_with_only_the_base_url_changed(live_server, datasets):
    for split in ("train", "valid", "test"):
        part = datasets["mini-1m-k40"].splits.get(split=split)
        size, data, response = fetch_like_the_2019_script(live_server.url, part.filename)
        assert response.history[0].status_code == 302
        assert response.history[0].headers["Cache-Control"] == "no-store"
        assert size == part.bytes == len(data)
        assert hashlib.sha256(data).hexdigest() == part.sha256
        assert data.count(b"\n") == part.lines


@pytest.mark.parametrize(("filename", "error"), [
    ("no-such.train.jsonl", "dataset_not_found"), ("mini-1m.bogus.jsonl", "dataset_not_found"),
    ("mini-1m.train.json", "dataset_not_found"), ("mini-1m.train", "dataset_not_found"),
    ("..%2Fmini-1m.train.jsonl", "not_found"), ("mini.1m.train.jsonl", "dataset_not_found"),
    ("mini-1m-draft.valid.jsonl", "dataset_not_found"),  # unpublished: the same answer as no dataset
])
def test_unknown_malformed_or_unpublished_files_are_a_json_404(api, datasets, filename, error):
    response = api.get(f"/gpt-2/output-dataset/v1/{filename}")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == error


def test_unrouted_paths_under_gpt_2_are_a_json_404_too(api, datasets):
    response = api.get("/gpt-2/output-dataset/v2/mini-1m.train.jsonl")
    assert response.status_code == 404 and response.json()["error"] == "not_found"
