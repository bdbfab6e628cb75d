"""seed_gpt2 records GPT-2's 2019 staged release as applied, audited, historical changes."""

from datetime import UTC, datetime

import pytest
from django.core.management import call_command

from registry.models import ModelSize
from releases.audit.verify import audit_verify
from releases.models import AuditEvent, StageChange, StageChangeRequest, StageDecision


def _seed() -> None:
    call_command("seed_gpt2", stdout=open("/dev/null", "w"))


@pytest.fixture
def seeded(db):
    _seed()


def test_gpt2_sizes_end_2019_public_and_mini_sizes_stay_internal(seeded):
    stages = dict(ModelSize.objects.values_list("slug", "stage"))
    assert {slug: stages[slug] for slug in ("gpt2-124m", "gpt2-355m", "gpt2-774m", "gpt2-1558m")} == {
        "gpt2-124m": "public", "gpt2-355m": "public", "gpt2-774m": "public", "gpt2-1558m": "public"}
    assert {stage for slug, stage in stages.items() if slug.startswith("mini-")} == {"internal"}


def test_the_2019_dates_are_recorded(seeded):
    history = {
        (c.model_size.slug, c.to_stage): c.applied_at.date().isoformat()
        for c in StageChange.objects.select_related("model_size")
    }
    assert history == {
        ("gpt2-124m", "public"): "2019-02-14",
        ("gpt2-355m", "public"): "2019-05-03",
        ("gpt2-774m", "partners"): "2019-05-03",
        ("gpt2-774m", "public"): "2019-08-20",
        ("gpt2-1558m", "partners"): "2019-08-20",
        ("gpt2-1558m", "public"): "2019-11-05",
    }


def test_history_is_marked_historical_with_no_approvals_and_is_audited(seeded):
    assert set(StageChangeRequest.objects.values_list("historical", "status")) == {(True, "applied")}
    assert not StageDecision.objects.exists()
    assert AuditEvent.objects.filter(action="stage.history_recorded", actor_label="system").count() == 6
    report = audit_verify(copies=False)
    assert (report.events, report.problem) == (AuditEvent.objects.count(), None)


def test_seeding_twice_adds_nothing(seeded):
    counts = (StageChange.objects.count(), StageChangeRequest.objects.count(), AuditEvent.objects.count())
    _seed()
    assert (StageChange.objects.count(), StageChangeRequest.objects.count(), AuditEvent.objects.count()) == counts


def test_the_review_of_124m_was_due_six_months_on(seeded):
    change = StageChange.objects.get(model_size__slug="gpt2-124m")
    assert change.review_by.isoformat() == "2019-08-14"
    assert change.applied_at == datetime(2019, 2, 14, tzinfo=UTC)
