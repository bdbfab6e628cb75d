"""Access requests with questions (issue #20): policy staff attach free-text, choice and agree-to questions to a
family or a size; a request answers them (portal, API, CLI) and the answers are part of the request and the
audit record, as asked at the time. Duplicate pending requests are refused even when they race."""

import threading

import pytest
from django.db import connection, transaction
from django.test import Client
from stagegate_client import cli

from releases.access import grants, questions
from releases.access.errors import AccessRequestNotPending
from releases.models import AccessQuestion, AccessRequest, AuditEvent
from tests.releases.conftest import make_partner, make_size, move, token_for

pytestmark = pytest.mark.django_db

TEAM, USE, AGREE = "Which team will use the weights?", "How will you use it?", "We will not fine-tune it for spam."


@pytest.fixture
def asked(size, alice, bob, pat):
    """mini-1m at partners, pat's lab a partner; the family asks one question, the size two more."""
    move(size, "partners", requester=alice, approvers=[bob])
    make_partner(alice, pat)
    family = questions.question_save(question=AccessQuestion(family=size.family, prompt=TEAM), actor=alice)
    choice = questions.question_save(question=AccessQuestion(
        model_size=size, kind="choice", prompt=USE, choices=["Detection", "Red-teaming", "Other"]), actor=alice)
    agree = questions.question_save(question=AccessQuestion(model_size=size, kind="agree", prompt=AGREE),
                                    actor=alice)
    return {"team": family, "use": choice, "agree": agree}


def _answers(asked, **override) -> dict:
    return {str(asked["team"].pk): "Detection group", str(asked["use"].pk): "Detection",
            str(asked["agree"].pk): True, **override}


def test_staff_set_questions_in_the_admin_audited_and_others_cannot(size, alice, otto, steve):
    staff = Client()
    staff.force_login(alice)
    answer = staff.post("/admin/releases/accessquestion/add/", {
        "family": size.family.pk, "kind": "choice", "prompt": USE, "choices": "Detection\nRed-teaming\n",
        "required": "on", "position": "0", "active": "on"})
    assert answer.status_code == 302
    question = AccessQuestion.objects.get()
    assert question.choices == ["Detection", "Red-teaming"]
    assert AuditEvent.objects.get(action="access_question.created").after["choices"] == ["Detection", "Red-teaming"]
    one_choice = staff.post("/admin/releases/accessquestion/add/", {
        "model_size": size.pk, "kind": "choice", "prompt": "Pick", "choices": "Only", "position": "0"})
    assert "A choice needs at least two options" in one_choice.content.decode()
    both = staff.post("/admin/releases/accessquestion/add/", {
        "family": size.family.pk, "model_size": size.pk, "kind": "text", "prompt": "Who?", "position": "0"})
    assert "not both or neither" in both.content.decode()
    assert AccessQuestion.objects.count() == 1
    assert staff.post(f"/admin/releases/accessquestion/{question.pk}/delete/").status_code == 403
    for user in (otto, steve):  # an operator and a staff account without the group
        client = Client()
        client.force_login(user)
        assert client.get("/admin/releases/accessquestion/add/").status_code == 403


def test_a_member_answers_in_the_portal_and_a_refusal_keeps_what_they_typed(asked, size, alice, pat):
    member = Client()
    member.force_login(pat)
    form = member.get(f"/portal/access-requests/?size={size.slug}").content.decode()
    assert form.index(TEAM) < form.index(USE) < form.index(AGREE)  # the family's first
    assert f'name="answer-{asked["agree"].pk}" required' in form and "<option>Red-teaming</option>" in form
    base = {"model_size": size.pk, "purpose": "Detector evaluation.", f"answer-{asked['team'].pk}": "Detection group",
            f"answer-{asked['use'].pk}": "Detection"}
    refused = member.post("/portal/access-requests/", base).content.decode()
    assert "Tick the box to agree" in refused and "Detector evaluation." in refused and "Detection group" in refused
    assert not AccessRequest.objects.exists()
    sent = member.post("/portal/access-requests/", {**base, f"answer-{asked['agree'].pk}": "on"})
    assert sent.status_code == 302
    request = AccessRequest.objects.get()
    assert [(a["prompt"], a["answer"]) for a in request.answers] == [
        (TEAM, "Detection group"), (USE, "Detection"), (AGREE, True)]
    assert AuditEvent.objects.get(action="access_request.created").data["answers"] == request.answers
    staff = Client()
    staff.force_login(alice)
    page = staff.get(f"/admin/releases/accessrequest/{request.pk}/change/").content.decode()
    assert TEAM in page and "Detection group" in page and "agreed" in page


def test_the_api_lists_the_questions_and_checks_every_answer(asked, size, api, pat):
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(pat)}")
    listed = api.get("/api/v1/access-questions/", {"model_size": size.slug}).json()
    assert [(q["id"], q["kind"], q["required"]) for q in listed] == [
        (asked["team"].pk, "text", True), (asked["use"].pk, "choice", True), (asked["agree"].pk, "agree", True)]
    assert api.get("/api/v1/access-questions/").status_code == 400
    assert api.get("/api/v1/access-questions/", {"model_size": "nope"}).status_code == 404
    body = {"model_size": size.slug, "purpose": "Evaluation."}
    for answers, field in ((_answers(asked, **{str(asked["use"].pk): "Spam"}), asked["use"].pk),
                           (_answers(asked, **{str(asked["agree"].pk): False}), asked["agree"].pk),
                           (_answers(asked, **{str(asked["team"].pk): 7}), asked["team"].pk),
                           ({**_answers(asked), "99999": "x"}, 99999)):
        refused = api.post("/api/v1/access-requests/", {**body, "answers": answers}, format="json")
        assert refused.status_code == 400 and refused.json()["error"] == "answers_invalid"
        assert f"answers.{field}" in refused.json()["fields"]
    assert not AccessRequest.objects.exists()
    made = api.post("/api/v1/access-requests/", {**body, "answers": _answers(asked)}, format="json")
    assert made.status_code == 201 and made.json()["answers"][1] == {
        "question_id": asked["use"].pk, "kind": "choice", "prompt": USE, "answer": "Detection"}


def test_answers_stay_as_asked_when_a_question_changes_or_retires(asked, size, alice, pat):
    request = grants.access_request_create(user=pat, size=size, purpose="Evaluation.", answers=_answers(asked))
    team = asked["team"]
    team.prompt, team.active = "Which department?", False
    questions.question_save(question=team, actor=alice)
    assert AccessRequest.objects.get(pk=request.pk).answers[0]["prompt"] == TEAM
    assert [q.pk for q in questions.questions_for(size)] == [asked["use"].pk, asked["agree"].pk]
    changed = AuditEvent.objects.get(action="access_question.changed")
    assert changed.before == {"prompt": TEAM, "active": True} and changed.after == {"prompt": "Which department?",
                                                                                    "active": False}


def test_a_size_without_questions_asks_none(size, alice, bob, pat):
    move(size, "partners", requester=alice, approvers=[bob])
    make_partner(alice, pat)
    other = make_size("mini-3m")
    questions.question_save(question=AccessQuestion(model_size=other, prompt="Only for mini-3m"), actor=alice)
    assert grants.access_request_create(user=pat, size=size, purpose="Evaluation.").answers == []


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_request_access_in_the_cli_lists_unanswered_questions_then_sends_answers(asked, live_server, size, pat,
                                                                                   capsys):
    token = token_for(pat)
    args = ["request-access", size.slug, "--purpose", "Evaluation.", "--server", live_server.url, "--token", token]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert f"{asked['use'].pk}: {USE} [one of: Detection, Red-teaming, Other]" in err and "yes to agree" in err
    assert not AccessRequest.objects.exists()
    answers = ["--answer", f"{asked['team'].pk}=Detection group", "--answer", f"{asked['use'].pk}=Detection",
               "--answer", f"{asked['agree'].pk}=yes"]
    assert cli.main([*args, *answers]) == 0
    assert "pending" in capsys.readouterr().out
    assert AccessRequest.objects.get().answers[2]["answer"] is True


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite serialises writers: nothing races there")
def test_two_members_asking_at_once_leave_one_pending_request(size, alice, bob, pat, django_user_model):
    """The service checks for a pending request, then inserts. Here a colleague's insert sits uncommitted
    between that check and ours: the unique constraint, not the check, refuses the second."""
    move(size, "partners", requester=alice, approvers=[bob])
    lab = make_partner(alice, pat)
    mo = django_user_model.objects.create_user("mo", password="x")
    from releases.access import partners

    partners.partner_member_add(partner=lab, user=mo, actor=alice)
    inserted, release = threading.Event(), threading.Event()

    def colleague():
        try:
            with transaction.atomic():
                AccessRequest.objects.create(partner=lab, model_size=size, requested_by=mo, purpose="First.")
                inserted.set()
                release.wait(10)
        finally:
            connection.close()

    first = threading.Thread(target=colleague)
    first.start()
    inserted.wait(10)
    threading.Timer(0.5, release.set).start()  # commit while our insert waits on the index
    with pytest.raises(AccessRequestNotPending, match="already has a pending request"):
        grants.access_request_create(user=pat, size=size, purpose="Second.")
    first.join()
    assert AccessRequest.objects.filter(status="pending").count() == 1
