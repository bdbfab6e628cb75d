"""The registry admin writes through the audited services: each save and delete is an audit event in the name of
the person who made it, from their address, with the fields that moved."""

import pytest
from django.test import Client

from registry import services
from registry.datasets.removal import removal_request_create
from registry.models import EvalResult, ModelCard, ModelFamily, ModelSize, TrainingRun
from releases.models import AuditEvent
from tests.releases.conftest import HPARAMS

ADMIN = "/admin/registry/{}/"


def _as(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _events(prefix: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action__startswith=prefix).order_by("id"))


def _size_form(size, **changes) -> dict:
    data = {"family": size.family_id, "slug": size.slug, "display_name": size.display_name,
            "historical_names": "[]", "order": size.order, **HPARAMS,
            "artifacts-TOTAL_FORMS": 0, "artifacts-INITIAL_FORMS": 0, "evals-TOTAL_FORMS": 0, "evals-INITIAL_FORMS": 0}
    data.update(changes)
    return data


def test_an_operator_adds_a_family_in_their_own_name(otto):
    response = _as(otto).post(ADMIN.format("modelfamily") + "add/", {"slug": "mini", "name": "Mini",
                                                                       "description": "Small."})
    assert response.status_code == 302, response.content.decode()[:2000]
    [event] = _events("family.")
    assert (event.action, event.actor_label, event.ip) == ("family.created", "otto", "127.0.0.1")
    assert event.after == {"slug": "mini", "name": "Mini", "description": "Small.", "bundled": False}


def test_an_operator_renames_a_family_and_the_trail_shows_the_old_name(size, otto):
    family = size.family
    response = _as(otto).post(ADMIN.format("modelfamily") + f"{family.pk}/change/", {
        "slug": family.slug, "name": "Stagegate mini", "description": ""})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert ModelFamily.objects.get(pk=family.pk).name == "Stagegate mini"
    event = _events("family.updated")[0]
    assert (event.actor_label, event.target_id, event.before, event.after) == (
        "otto", str(family.pk), {"name": "Mini"}, {"name": "Stagegate mini"})


def test_an_operator_adds_a_size_which_gets_its_first_revision(size, otto):
    response = _as(otto).post(ADMIN.format("modelsize") + "add/", _size_form(size, slug="mini-2m", display_name="2M"))
    assert response.status_code == 302, response.content.decode()[:2000]
    added = ModelSize.objects.get(slug="mini-2m")
    assert added.revisions.count() == 1  # every size has a revision, however it was made
    created = [e for e in _events("size.created") if e.target_id == str(added.pk)]
    assert [(e.actor_label, e.ip, e.after["display_name"]) for e in created] == [("otto", "127.0.0.1", "2M")]
    revision = AuditEvent.objects.get(action="revision.created", target_id=str(added.revisions.get().pk))
    assert revision.actor_label == "otto"


def test_an_operator_edits_a_size_and_adds_an_eval_result_inline(size, otto):
    response = _as(otto).post(ADMIN.format("modelsize") + f"{size.pk}/change/", _size_form(
        size, display_name="1.5M", historical_names='["mini small"]', **{
            "evals-TOTAL_FORMS": 1, "evals-0-dataset": "Shakespeare (held out)", "evals-0-metric": "perplexity",
            "evals-0-value": "41.5", "evals-0-source": "measured"}))
    assert response.status_code == 302, response.content.decode()[:2000]
    size.refresh_from_db()
    assert (size.display_name, size.historical_names, size.stage) == ("1.5M", ["mini small"], "internal")
    event = _events("size.updated")[0]
    assert (event.actor_label, event.before, event.after) == (
        "otto", {"display_name": "mini-1m", "historical_names": []},
        {"display_name": "1.5M", "historical_names": ["mini small"]})
    [added] = _events("eval_result.")
    assert (added.action, added.actor_label, added.after["value"], added.after["model_size"]) == (
        "eval_result.created", "otto", 41.5, str(size))
    assert size.revisions.count() == 1  # same hparams: no new revision


def test_an_operator_corrects_an_eval_result(size, otto):
    result = services.eval_result_record(size=size, dataset="PTB", metric="perplexity", value=35.0)
    response = _as(otto).post(ADMIN.format("evalresult") + f"{result.pk}/change/", {
        "model_size": size.pk, "dataset": "PTB", "metric": "perplexity", "value": "35.76", "source": "paper"})
    assert response.status_code == 302, response.content.decode()[:2000]
    event = _events("eval_result.updated")[0]
    assert (event.actor_label, event.before, event.after) == (
        "otto", {"value": 35.0, "source": ""}, {"value": 35.76, "source": "paper"})


def _card_form(size, **sections) -> dict:
    return {"model_size": size.pk, **{name: "" for name in ModelCard.SECTIONS}, **sections}


def test_policy_staff_edit_a_model_card_in_their_own_name(size, alice):
    card = services.model_card_set(size=size, details="A small model.")
    response = _as(alice).post(ADMIN.format("modelcard") + f"{card.pk}/change/", _card_form(
        size, details="A small model.", limitations_and_biases="Trained on old plays; imitates their biases."))
    assert response.status_code == 302, response.content.decode()[:2000]
    event = _events("model_card.updated")[0]
    assert (event.actor_label, event.ip, event.target_id) == ("alice", "127.0.0.1", str(card.pk))
    assert (event.before, event.after) == ({"limitations_and_biases": ""},
                                           {"limitations_and_biases": "Trained on old plays; imitates their biases."})


def test_an_operator_cannot_edit_a_model_card_and_nothing_is_recorded(size, otto):
    card = services.model_card_set(size=size, details="A small model.")
    response = _as(otto).post(ADMIN.format("modelcard") + f"{card.pk}/change/", _card_form(size, details="Mine."))
    assert response.status_code == 403
    assert ModelCard.objects.get().details == "A small model."
    assert not _events("model_card.updated")


def test_saving_an_unchanged_card_records_nothing(size, alice):
    card = services.model_card_set(size=size, details="A small model.")
    _as(alice).post(ADMIN.format("modelcard") + f"{card.pk}/change/", _card_form(size, details="A small model."))
    assert [e.action for e in _events("model_card.")] == ["model_card.created"]


def test_a_superuser_edits_a_training_run(size, admin_user):
    run = services.training_run_save(run=TrainingRun(model_size=size, corpus="default", steps=10))
    response = _as(admin_user).post(ADMIN.format("trainingrun") + f"{run.pk}/change/", {
        "model_size": size.pk, "corpus": "tiny-shakespeare", "settings": "{}", "steps": 10, "final_val_loss": "",
        "finished_at_0": "", "finished_at_1": ""})
    assert response.status_code == 302, response.content.decode()[:2000]
    event = _events("training_run.updated")[0]
    assert (event.actor_label, event.before, event.after) == (
        "admin", {"corpus": "default"}, {"corpus": "tiny-shakespeare"})


def test_a_superuser_deletes_eval_results_one_by_one_and_from_the_list(size, admin_user):
    first, second, third = (services.eval_result_record(size=size, dataset=name, metric="perplexity", value=1.0)
                            for name in ("PTB", "WikiText-2", "enwik8"))
    client = _as(admin_user)
    assert client.post(ADMIN.format("evalresult") + f"{first.pk}/delete/", {"post": "yes"}).status_code == 302
    client.post(ADMIN.format("evalresult"), {"action": "delete_selected", "_selected_action": [second.pk, third.pk],
                                             "post": "yes"})
    assert not EvalResult.objects.exists()
    deleted = _events("eval_result.deleted")
    assert sorted(e.before["dataset"] for e in deleted) == ["PTB", "WikiText-2", "enwik8"]
    assert {(e.actor_label, e.ip) for e in deleted} == {("admin", "127.0.0.1")}


@pytest.mark.parametrize("status", ["removed", "declined"])
def test_staff_handling_of_a_removal_request_is_recorded(db, alice, status):
    request = removal_request_create(name="Ann", email="ann@example.org", dataset=None, text="My post.",
                                     reason="It is mine.", ip="192.0.2.1")
    response = _as(alice).post(f"/admin/registry/dataremovalrequest/{request.pk}/change/", {
        "status": status, "staff_notes": "Checked the splits."})
    assert response.status_code == 302, response.content.decode()[:2000]
    created, updated = _events("removal_request.")
    assert (created.action, updated.action) == ("removal_request.created", "removal_request.updated")
    assert (updated.actor_label, updated.ip, updated.target_id) == ("alice", "127.0.0.1", str(request.pk))
    assert (updated.before, updated.after) == ({"status": "open", "staff_notes": ""},
                                               {"status": status, "staff_notes": "Checked the splits."})
