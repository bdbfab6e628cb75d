"""Jobs in the admin: a cancellation is audited in the operator's name with the status it ended, and a job's
record is never re-saved (which would submit it again)."""

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from releases.models import AuditEvent
from workers.models import Job

pytestmark = pytest.mark.django_db


def _as(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_an_operator_cancels_a_queued_job_and_the_trail_shows_it_was_queued(otto):
    job = Job.objects.create(kind=Job.Kind.TRAIN, params={"model_size": "mini-1m"})
    _as(otto).post("/admin/workers/job/", {"action": "cancel_jobs", "_selected_action": [job.pk]})
    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED
    event = AuditEvent.objects.get(action="job.cancelled")
    assert (event.actor_label, event.ip, event.target_id) == ("otto", "127.0.0.1", str(job.pk))
    assert (event.before, event.after) == ("queued", "cancelled")


def test_a_finished_job_is_not_cancelled_and_nothing_is_recorded(otto):
    job = Job.objects.create(kind=Job.Kind.TRAIN, params={"model_size": "mini-1m"}, status=Job.Status.SUCCEEDED)
    _as(otto).post("/admin/workers/job/", {"action": "cancel_jobs", "_selected_action": [job.pk]})
    assert Job.objects.get(pk=job.pk).status == Job.Status.SUCCEEDED
    assert not AuditEvent.objects.filter(action="job.cancelled").exists()


def test_saving_a_jobs_change_form_submits_nothing(otto, settings, tmp_path, broker_url):
    """No role may change a job; were one given the permission, saving its form must not start it again."""
    from registry.seed_data import mini_family_seed

    settings.STAGEGATE_CORPORA_DIR = str(tmp_path)
    (tmp_path / "plays.txt").write_text("To be, or not to be.\n\n" * 50)
    mini_family_seed()  # parameters that would validate: a second submission would go through
    otto.user_permissions.add(Permission.objects.get(content_type__app_label="workers", codename="change_job"))
    job = Job.objects.create(kind=Job.Kind.TRAIN, params={"model_size": "mini-1m", "steps": 10, "eval_interval": 5,
                                                          "checkpoint_interval": 5})
    with broker_url("memory://"):
        response = _as(otto).post(f"/admin/workers/job/{job.pk}/change/", {
            "progress_done": 0, "progress_total": 0, "progress_unit": ""})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Job.objects.count() == 1
    assert not AuditEvent.objects.filter(action="job.submitted").exists()
