"""POST /api/v1/jobs/, GET /api/v1/jobs/{id}/, POST /api/v1/jobs/{id}/cancel/."""

import hashlib

import pytest
from django.urls import reverse

from devstack.procs import free_port
from registry import storage
from workers import inputs
from workers.models import Job


@pytest.fixture
def seeded(db, s3):
    from django.core.management import call_command

    call_command("seed_gpt2", stdout=open("/dev/null", "w"))


def test_staff_submit_a_training_job_and_it_is_queued(api, alice, seeded):
    api.force_authenticate(alice)
    response = api.post(reverse("job-list"), {"kind": "train", "params": {
        "model_size": "mini-1m", "steps": 20, "eval_interval": 10, "checkpoint_interval": 20}}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    job = Job.objects.get(pk=body["id"])
    assert job.status == "queued" and job.params["steps"] == 20 and job.params["model_size"] == "mini-1m"
    assert job.enqueued_at is not None and job.created_by == alice
    assert api.get(reverse("job-detail", args=[job.pk])).json()["status"] == "queued"
    # Its corpus is pinned by content at submission: one object for `default`, one blob for its bytes.
    default = storage.read_bytes(inputs.DEFAULT_CORPUS_KEY)
    assert job.inputs["corpus_sha256"] == hashlib.sha256(default).hexdigest()
    assert job.inputs["corpus_name"] == storage.read_bytes(inputs.DEFAULT_NAME_KEY).decode()  # seeded with it
    assert storage.blob_get(job.inputs["corpus_sha256"]) == default
    assert api.get(reverse("job-detail", args=[job.pk])).json()["inputs"] == job.inputs


def test_submission_answers_503_and_creates_nothing_when_storage_is_down(api, alice, seeded, settings):
    settings.S3_ENDPOINT_URL = f"http://127.0.0.1:{free_port()}"
    api.force_authenticate(alice)
    response = api.post(reverse("job-list"), {"kind": "train", "params": {"model_size": "mini-1m"}}, format="json")
    assert response.status_code == 503 and response.json()["error"] == "storage_unavailable"
    assert not Job.objects.exists()


@pytest.mark.parametrize("params, problem", [
    ({"model_size": "gpt2-9000m"}, "model_size"),
    ({"model_size": "mini-1m", "steps": -3}, "steps"),
    ({"model_size": "mini-1m", "epochs": 3}, "epochs: Unknown parameter"),
    ({"model_size": "mini-1m", "corpus": "/nonexistent.txt"}, "corpus"),
])
def test_bad_parameters_are_named_and_create_nothing(api, alice, seeded, params, problem):
    api.force_authenticate(alice)
    response = api.post(reverse("job-list"), {"kind": "train", "params": params}, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_job_params"
    assert problem in response.json()["detail"]
    assert not Job.objects.exists()


def test_generating_from_an_untrained_size_is_refused(api, alice, seeded):
    api.force_authenticate(alice)
    response = api.post(reverse("job-list"), {"kind": "generate_output_dataset", "params": {"model_size": "mini-1m"}},
                        format="json")
    assert response.status_code == 400
    assert "has not been trained" in response.json()["detail"]


def test_researchers_cannot_submit_jobs(api, rita, seeded):
    api.force_authenticate(rita)
    response = api.post(reverse("job-list"), {"kind": "train", "params": {"model_size": "mini-1m"}}, format="json")
    assert response.status_code == 403
    assert not Job.objects.exists()


def test_anonymous_callers_are_told_to_authenticate(api, seeded):
    response = api.get(reverse("job-list"))
    assert response.status_code in (401, 403)
    assert response.json()["error"] in ("not_authenticated", "permission_denied")


def test_submission_answers_503_and_creates_nothing_when_redis_is_down(api, alice, seeded, broker_url):
    api.force_authenticate(alice)
    with broker_url(f"redis://127.0.0.1:{free_port()}/0"):
        response = api.post(reverse("job-list"), {"kind": "train", "params": {"model_size": "mini-1m"}},
                            format="json")
    assert response.status_code == 503
    assert response.json()["error"] == "broker_unavailable"
    assert not Job.objects.exists()


def test_cancel_through_the_api(api, alice, seeded):
    api.force_authenticate(alice)
    job_id = api.post(reverse("job-list"), {"kind": "train", "params": {"model_size": "mini-1m"}},
                      format="json").json()["id"]
    response = api.post(reverse("job-cancel", args=[job_id]))
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    again = api.post(reverse("job-cancel", args=[job_id]))
    assert again.status_code == 409 and again.json()["error"] == "job_not_cancellable"


def test_unknown_job_is_404_json(api, alice, seeded):
    api.force_authenticate(alice)
    response = api.get(reverse("job-detail", args=[999999]))
    assert response.status_code == 404 and response.json()["error"] == "job_not_found"


def test_a_corpus_that_goes_between_checking_and_pinning_is_a_400(api, alice, seeded, monkeypatch):
    from workers import corpora

    def gone(spec):
        raise corpora.CorpusRefused(f"{spec!r} is not a file in the corpora folder")

    monkeypatch.setattr(corpora, "corpus_text", gone)
    monkeypatch.setattr(inputs, "default_corpus", lambda: gone("default"))
    api.force_authenticate(alice)
    response = api.post(reverse("job-list"), {"kind": "train", "params": {"model_size": "mini-1m"}}, format="json")
    assert response.status_code == 400 and "corpus" in response.json()["fields"]
    assert not Job.objects.exists()


def test_a_blob_is_named_by_a_sha256_only(s3, tmp_path):
    with pytest.raises(ValueError, match="not a sha256"):
        storage.blob_get("../../etc/passwd", cache_dir=tmp_path)
