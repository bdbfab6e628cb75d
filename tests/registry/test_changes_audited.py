"""Every write to what exists is an audit event: families, sizes, cards, eval results and training runs, made
through the registry's services (seeds, workers) with who did it and the fields that moved."""

import pytest
from django.core.management import call_command

from registry import services
from registry.models import EvalResult, ModelCard, ModelFamily, TrainingRun
from releases.models import AuditEvent
from tests.releases.conftest import HPARAMS


def _events(prefix: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action__startswith=prefix).order_by("id"))


def test_a_new_family_and_size_are_audited_with_what_they_hold(db, otto):
    family = services.family_upsert(slug="mini", name="Mini", actor=otto, ip="192.0.2.7")
    size = services.model_size_upsert(family=family, slug="mini-1m", display_name="1M", hparams=HPARAMS, actor=otto)
    [created] = _events("family.")
    assert (created.action, created.actor_label, created.ip, created.target_id) == (
        "family.created", "otto", "192.0.2.7", str(family.pk))
    assert created.before is None
    assert created.after == {"slug": "mini", "name": "Mini", "description": "", "bundled": False}
    [size_created] = _events("size.")
    assert size_created.actor_label == "otto"
    assert size_created.after == {"family": "Mini", "slug": "mini-1m", "display_name": "1M", "historical_names": [],
                                  "order": 0, **HPARAMS}
    # Its first revision, made by the same service, in the same person's name.
    assert [(e.action, e.actor_label, e.target_label) for e in _events("revision.")] == [
        ("revision.created", "otto", str(size.revisions.get()))]


def test_an_edit_records_only_the_fields_that_moved(db, otto):
    family = services.family_upsert(slug="mini", name="Mini", description="Small.")
    services.family_upsert(slug="mini", name="Stagegate mini", description="Small.", actor=otto)
    created, updated = _events("family.")
    assert (created.action, created.actor_label) == ("family.created", "system")
    assert (updated.action, updated.actor_label) == ("family.updated", "otto")
    assert (updated.before, updated.after) == ({"name": "Mini"}, {"name": "Stagegate mini"})
    assert ModelFamily.objects.get(pk=family.pk).name == "Stagegate mini"


def test_saving_without_a_change_writes_and_records_nothing(db):
    call_command("seed_gpt2", stdout=open("/dev/null", "w"))
    seeded = AuditEvent.objects.count()
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"family.created", "size.created", "model_card.created", "eval_result.created",
            "revision.created"} <= actions
    assert set(AuditEvent.objects.filter(action__in=["family.created", "size.created"])
               .values_list("actor_label", flat=True)) == {"system"}
    call_command("seed_gpt2", stdout=open("/dev/null", "w"))
    assert AuditEvent.objects.count() == seeded


def test_a_size_edit_never_writes_its_stage(size, otto):
    from registry.models import ModelSize

    ModelSize.objects.filter(pk=size.pk).update(stage="partners")  # as releases/ moves it, concurrently
    size.display_name = "1.5M"  # this instance still holds `internal`
    services.model_size_save(size=size, actor=otto)
    size.refresh_from_db()
    assert (size.display_name, size.stage) == ("1.5M", "partners")
    event = _events("size.updated")[0]
    assert (event.before, event.after) == ({"display_name": "mini-1m"}, {"display_name": "1.5M"})


def test_a_card_change_is_recorded_section_by_section(size, alice):
    services.model_card_set(size=size, details="A small model.", intended_uses="Tests.")
    services.model_card_set(size=size, details="A small GPT-2-shaped model.", intended_uses="Tests.", actor=alice,
                            ip="192.0.2.8")
    created, updated = _events("model_card.")
    assert created.after["details"] == "A small model." and created.actor_label == "system"
    assert (updated.actor_label, updated.ip, updated.target_id) == ("alice", "192.0.2.8",
                                                                    str(ModelCard.objects.get().pk))
    assert (updated.before, updated.after) == ({"details": "A small model."}, {"details": "A small GPT-2-shaped model."})


def test_an_eval_result_recorded_again_with_a_new_value_is_an_update(size, otto):
    services.eval_result_record(size=size, dataset="WikiText-2", metric="perplexity", value=30.0, source="paper")
    services.eval_result_record(size=size, dataset="WikiText-2", metric="perplexity", value=29.5, source="paper",
                                actor=otto)
    assert EvalResult.objects.get().value == 29.5
    created, updated = _events("eval_result.")
    assert created.after["value"] == 30.0 and created.after["model_size"] == str(size)
    assert (updated.actor_label, updated.before, updated.after) == ("otto", {"value": 30.0}, {"value": 29.5})


def test_a_training_run_is_recorded_without_its_loss_curve(size, otto):
    run = services.training_run_save(run=TrainingRun(model_size=size, corpus="default", steps=10,
                                                     final_val_loss=3.5, loss_curve=[[1, 5.0], [10, 3.5]]), actor=otto)
    [event] = _events("training_run.")
    assert (event.action, event.actor_label, event.target_id) == ("training_run.created", "otto", str(run.pk))
    assert event.after["steps"] == 10 and "loss_curve" not in event.after
    assert event.data == {"loss_curve_points": 2}


def test_a_delete_is_recorded_with_what_was_deleted(size, admin_user):
    result = services.eval_result_record(size=size, dataset="PTB", metric="perplexity", value=35.76)
    result_id = result.pk
    services.registry_record_delete(obj=result, actor=admin_user, ip="192.0.2.9")
    assert not EvalResult.objects.exists()
    event = _events("eval_result.deleted")[0]
    assert (event.actor_label, event.ip, event.target_id, event.after) == ("admin", "192.0.2.9", str(result_id), None)
    assert event.before["dataset"] == "PTB" and event.before["value"] == 35.76


def test_a_refused_delete_leaves_no_audit_row(size, admin_user):
    from django.db.models import ProtectedError

    with pytest.raises(ProtectedError):
        services.registry_record_delete(obj=size.family, actor=admin_user)  # it still has a size
    assert not _events("family.deleted")
