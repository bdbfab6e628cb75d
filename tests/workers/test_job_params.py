"""Job parameters are allow-listed and bounded: each attack on a worker's files or capacity is a 400 naming the
field, from the API, the admin and `manage.py job` alike, and creates nothing."""

import os

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from registry.models import ModelSize
from releases.models import AuditEvent
from workers import bridge, services
from workers.errors import JobParamsInvalid
from workers.job_params import params_validate
from workers.models import Job

pytestmark = pytest.mark.django_db


def _fields(kind: str, params) -> dict:
    with pytest.raises(JobParamsInvalid) as refused:
        params_validate(kind, params)
    return refused.value.extra["fields"]


@pytest.mark.parametrize("corpus", ["/proc/self/environ", "/etc/shadow", "../../etc/passwd",
                                    "s3://models/mini-1m/0123/model.safetensors", "s3://jobs/", "s3://audit/",
                                    "s3://corpora/../models/"])
def test_a_corpus_outside_the_allow_list_is_refused_for_every_kind(mini_family, corpus, s3):
    assert "corpus" in _fields("train", {"model_size": "mini-1m", "corpus": corpus})


def test_a_symlink_out_of_the_corpora_folder_is_refused(mini_family):
    os.symlink("/etc/passwd", mini_family / "passwd.txt")
    assert "outside the corpora folder" in _fields("train", {"model_size": "mini-1m", "corpus": "passwd.txt"})["corpus"][0]


def test_a_corpus_inside_the_folder_is_stored_relative_to_it(mini_family):
    assert params_validate("train", {"model_size": "mini-1m", "corpus": str(mini_family / "plays.txt")})["corpus"] \
        == "plays.txt"


@pytest.mark.parametrize(("params", "field"), [
    ({"seed": "x"}, "seed"), ({"seed": True}, "seed"), ({"seed": -1}, "seed"), ({"seed": 2**40}, "seed"),
    ({"steps": 10**9}, "steps"), ({"steps": 0}, "steps"), ({"batch_size": 10**6}, "batch_size"),
    ({"grad_accum": 10**6}, "grad_accum"), ({"threads": 10**4}, "threads"), ({"lr": 5}, "lr"),
    ({"lr": "fast"}, "lr"), ({"eval_interval": 400}, "eval_interval"), ({"device": "tpu"}, "device"),
    ({"precision": "fp16"}, "precision"),
    ({"epochs": 3}, "epochs"), ({"model_size": "gpt2-9000m"}, "model_size"),
])
def test_training_parameters_are_bounded_and_named(mini_family, params, field):
    assert field in _fields("train", {"model_size": "mini-13m", **params})


def test_the_job_s_precision_choices_are_modelcore_s():
    from modelcore.train import PRECISIONS

    assert bridge.TRAINING_PRECISIONS == PRECISIONS


def test_a_micro_batch_is_capped_in_tokens_by_the_sizes_context(mini_family, settings):
    n_ctx = ModelSize.objects.get(slug="mini-13m").n_ctx
    settings.STAGEGATE_JOB_MAX_BATCH_TOKENS = 64 * n_ctx
    assert params_validate("train", {"model_size": "mini-13m", "batch_size": 64})["batch_size"] == 64
    assert "At most 64 for this size" in _fields("train", {"model_size": "mini-13m", "batch_size": 65})["batch_size"][0]


@pytest.fixture
def trained(mini_family, s3, tmp_path):
    from registry import revisions
    from tests.weights import gpt2_safetensors

    size = ModelSize.objects.get(slug="mini-1m")
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(gpt2_safetensors(size.hparams.as_dict()))
    revisions.artifact_register(size=size, path=weights)
    return size


@pytest.mark.parametrize(("params", "field"), [
    ({"shard_size": 1, "splits": {"train": 100_000, "valid": 1, "test": 1}}, "shard_size"),
    ({"splits": {"train": 10**7, "valid": 1, "test": 1}}, "splits"),
    ({"splits": {"train": 1, "valid": 1}}, "splits"), ({"max_length": 10**6}, "max_length"),
    ({"samplings": ["pure", "pure"]}, "samplings"), ({"samplings": ["greedy"]}, "samplings"),
    ({"seed": "x"}, "seed"), ({"reference": "maybe"}, "reference"), ({"corpus": "/etc/shadow"}, "corpus"),
    ({"nonsense": 1}, "nonsense"),
])
def test_generation_parameters_are_bounded_and_named(trained, params, field):
    assert field in _fields("generate_output_dataset", {"model_size": "mini-1m", **params})


def test_the_api_answers_400_with_field_errors_and_creates_nothing(api, otto, mini_family):
    api.force_authenticate(otto)
    response = api.post(reverse("job-list"), {"kind": "train", "params": {
        "model_size": "mini-1m", "seed": "x", "corpus": "/proc/self/environ"}}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_job_params" and set(body["fields"]) == {"seed", "corpus"}
    assert not Job.objects.exists()
    assert api.post(reverse("job-list"), {"kind": "train", "params": "steps=3"}, format="json").status_code == 400


def test_the_admin_form_shows_the_field_errors(client, otto, mini_family):
    client.force_login(otto)
    response = client.post("/admin/workers/job/add/", {"kind": "train", "params": '{"model_size": "mini-1m", "seed": "x"}'})
    assert response.status_code == 200
    assert "seed: A valid integer is required." in response.content.decode()
    assert not Job.objects.exists()


def test_the_job_command_names_the_fields_and_fails(mini_family):
    with pytest.raises(CommandError, match="corpus: .*outside the corpora folder"):
        call_command("job", "start", "train", "model_size=mini-1m", "corpus=/etc/shadow")
    assert not Job.objects.exists()


def test_a_submission_and_a_cancellation_are_audited(api, otto, mini_family, broker_url, s3):
    api.force_authenticate(otto)
    with broker_url("memory://"):
        response = api.post(reverse("job-list"), {"kind": "train", "params": {
            "model_size": "mini-1m", "steps": 10, "eval_interval": 5, "checkpoint_interval": 5}}, format="json")
        assert response.status_code == 201, response.content
        job_id = response.json()["id"]
        assert api.post(reverse("job-cancel", args=[job_id])).status_code == 200
    submitted = AuditEvent.objects.get(action="job.submitted")
    assert submitted.actor_label == "otto" and submitted.data["params"]["steps"] == 10
    assert AuditEvent.objects.get(action="job.cancelled").target_id == str(job_id)


def test_a_job_that_kills_its_worker_every_time_fails_after_the_last_attempt(mini_family, settings, broker_url):
    from datetime import timedelta

    from django.utils import timezone

    from workers import jobs

    long_ago = timezone.now() - timedelta(seconds=settings.STAGEGATE_JOB_STALE_AFTER_S + 60)
    job = Job.objects.create(kind="train", params={"model_size": "mini-1m"}, status=Job.Status.RUNNING,
                             attempts=settings.STAGEGATE_JOB_MAX_ATTEMPTS, heartbeat_at=long_ago)
    assert jobs.job_claim(job.pk) is None  # no worker takes it again
    with broker_url("memory://"):
        assert services.jobs_requeue_stale() == []
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and f"Gave up after {job.attempts} attempts" in job.error
    retry = Job.objects.create(kind="train", params={"model_size": "mini-1m"}, status=Job.Status.RUNNING,
                               attempts=1, heartbeat_at=long_ago)
    with broker_url("memory://"):
        assert services.jobs_requeue_stale() == [retry.pk]  # attempts left: handed out again


def test_a_multi_process_runs_collective_timeout_stays_under_half_the_stale_limit(mini_family, settings):
    settings.STAGEGATE_JOB_STALE_AFTER_S = 300
    base = {"model_size": "mini-1m", "corpus": "plays.txt"}
    fields = _fields("train", {**base, "nproc": 2, "collective_timeout_s": 151})
    assert "collective_timeout_s" in fields and "150" in fields["collective_timeout_s"][0]
    assert _fields("train", {**base, "nnodes": 2, "collective_timeout_s": 600}).get("collective_timeout_s")
    assert params_validate("train", {**base, "nproc": 2, "collective_timeout_s": 150})["collective_timeout_s"] == 150
    assert "master_port" in _fields("train", {**base, "nnodes": 2, "master_port": 29500})  # not the submitter's
