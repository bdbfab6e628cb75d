"""The admin for policy staff: actions, the request form, the size timeline, the dashboard, the audit trail."""

from datetime import timedelta

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse
from django.utils import timezone

from releases.governance import stage_requests
from releases.models import AuditEvent, StageChange, StageChangeRequest
from releases.stage_names import Stage
from tests.releases.conftest import ALL_FACTORS, RATIONALE, move, request_change

Status = StageChangeRequest.Status
CHANGELIST = "admin:releases_stagechangerequest_changelist"


@pytest.fixture
def as_user(client):
    def login(user):
        client.force_login(user)
        return client
    return login


def _action(client, action: str, requests, **extra):
    return client.post(reverse(CHANGELIST), {"action": action, ACTION_CHECKBOX_NAME: [r.pk for r in requests],
                                             **extra}, follow=True)


def test_policy_staff_see_pending_requests(as_user, size, alice, bob):
    request = request_change(size, alice, Stage.PARTNERS)
    response = as_user(bob).get(reverse(CHANGELIST), {"status__exact": "pending"})
    assert response.status_code == 200
    assert f"#{request.pk}" in str(request) and "internal → partners" in response.content.decode()


def _approve(client, request, comment="Checked the files and the evaluation.", confirm=True):
    data = {"comment": comment, **({"confirm": "on"} if confirm else {})}
    return client.post(reverse("admin:releases_stagechangerequest_approve", args=[request.pk]), data, follow=True)


def test_approving_on_the_requests_page_takes_a_comment_and_a_confirmation(as_user, size, alice, bob):
    request = request_change(size, alice, Stage.PARTNERS)
    client = as_user(bob)
    form = client.get(reverse("admin:releases_stagechangerequest_approve", args=[request.pk])).content.decode()
    assert "What it releases" in form and RATIONALE in form and 'name="confirm"' in form
    for missing in ({"comment": ""}, {"confirm": False}):
        page = _approve(client, request, **missing)
        assert "This field is required." in page.content.decode()
        request.refresh_from_db()
        assert request.status == Status.PENDING
    response = _approve(client, request)
    assert "You approved request" in response.content.decode()
    assert response.redirect_chain[-1][0] == reverse("admin:releases_stagechangerequest_change", args=[request.pk])
    request.refresh_from_db()
    size.refresh_from_db()
    assert (request.status, size.stage) == (Status.APPLIED, Stage.PARTNERS)
    assert request.decisions.get().comment == "Checked the files and the evaluation."
    assert AuditEvent.objects.get(action="stage.applied").ip == "127.0.0.1"


def test_a_refused_approval_comes_back_to_the_requests_page(as_user, size, alice):
    request = request_change(size, alice, Stage.PARTNERS)
    response = _approve(as_user(alice), request)
    assert "The requester cannot approve their own request." in response.content.decode()
    assert response.redirect_chain[-1][0] == reverse("admin:releases_stagechangerequest_change", args=[request.pk])
    request.refresh_from_db()
    assert request.status == Status.PENDING


def test_there_is_no_bulk_approval(as_user, size, alice, bob):
    request = request_change(size, alice, Stage.PARTNERS)
    client = as_user(bob)
    assert 'value="approve_selected"' not in client.get(reverse(CHANGELIST)).content.decode()
    _action(client, "approve_selected", [request])
    request.refresh_from_db()
    assert request.status == Status.PENDING


@pytest.mark.parametrize("who", ["admin_user", "steve"])
def test_a_superuser_or_a_staff_member_without_the_role_cannot_approve_in_the_admin(as_user, size, alice, who,
                                                                                   request):
    change = request_change(size, alice, Stage.PARTNERS)
    response = _approve(as_user(request.getfixturevalue(who)), change)
    assert response.status_code == 403
    change.refresh_from_db()
    assert change.status == Status.PENDING


def test_reject_asks_for_a_comment_first(as_user, size, alice, bob):
    request = request_change(size, alice, Stage.PARTNERS)
    client = as_user(bob)
    response = _action(client, "reject_selected", [request])
    assert response.status_code == 200
    assert 'name="comment"' in response.content.decode()
    request.refresh_from_db()
    assert request.status == Status.PENDING
    response = _action(client, "reject_selected", [request], comment="")
    request.refresh_from_db()
    assert request.status == Status.PENDING
    response = _action(client, "reject_selected", [request], comment="Wait for the detection study.")
    assert "Rejected 1 request(s)." in response.content.decode()
    request.refresh_from_db()
    assert request.status == Status.REJECTED
    assert request.decisions.get().comment == "Wait for the detection study."


def test_the_cancel_action_stops_an_embargo(as_user, size, alice, bob):
    request = request_change(size, alice, Stage.PARTNERS, effective_at=timezone.now() + timedelta(days=1))
    stage_requests.stage_request_approve(request=request, approver=bob)
    _action(as_user(alice), "cancel_selected", [request])
    request.refresh_from_db()
    assert request.status == Status.CANCELLED


def test_the_request_form_files_a_request_from_the_sizes_stage(as_user, size, alice):
    client = as_user(alice)
    url = reverse("admin:releases_stagechangerequest_add")
    assert client.get(url, {"model_size": size.pk}).status_code == 200
    data = {"model_size": size.pk, "to_stage": "partners", "rationale": RATIONALE, "public_rationale": "",
            **{f"factor_{key}": text for key, text in ALL_FACTORS.items()}}
    response = client.post(url, data)
    assert response.status_code == 302
    request = StageChangeRequest.objects.get()
    assert (request.from_stage, request.to_stage, request.requested_by) == ("internal", "partners", alice)


def test_the_request_form_shows_the_services_refusal(as_user, size, alice):
    response = as_user(alice).post(reverse("admin:releases_stagechangerequest_add"), {
        "model_size": size.pk, "to_stage": "public", "rationale": RATIONALE,
        "factor_replication": "Likely within a year.",
    })
    assert response.status_code == 200
    assert "This factor must be assessed before a release." in response.content.decode()
    assert not StageChangeRequest.objects.exists()


def test_researchers_cannot_reach_the_request_form(as_user, size, rita):
    rita.is_staff = True
    rita.save()
    assert as_user(rita).get(reverse("admin:releases_stagechangerequest_add")).status_code == 403


def test_the_size_page_shows_the_stage_timeline_and_no_stage_input(as_user, size, alice, bob, carol):
    move(size, Stage.PARTNERS, requester=alice, approvers=[bob])
    move(size, Stage.PUBLIC, requester=alice, approvers=[bob, carol])
    response = as_user(alice).get(reverse("admin:releases_sizerelease_change", args=[size.pk]))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Stage history" in html
    assert html.count("<td class=\"field-to_stage\">") == 2
    assert 'name="stage"' not in html
    assert "Request a stage change" in html


def test_the_dashboard_lists_pending_embargoed_and_overdue_items(as_user, size, alice, bob):
    move(size, Stage.PARTNERS, requester=alice, approvers=[bob])
    StageChange.objects.update(review_by=timezone.localdate() - timedelta(days=1))
    pending = request_change(size, alice, Stage.PUBLIC)
    response = as_user(bob).get(reverse("releases-dashboard"), {"at": timezone.localdate().isoformat()})
    html = response.content.decode()
    assert response.status_code == 200
    assert f'stagechangerequest/{pending.pk}/change/' in html
    assert "overdue since" in html
    assert "Partners holding an active grant for it." in html


def test_the_dashboard_is_for_policy_staff_only(as_user, admin_user):
    assert as_user(admin_user).get(reverse("releases-dashboard")).status_code == 403


def test_a_review_is_recorded_from_the_dashboard_link(as_user, size, alice, bob):
    move(size, Stage.PARTNERS, requester=alice, approvers=[bob])
    change = StageChange.objects.get()
    response = as_user(bob).post(reverse("admin:releases_stagechange_review", args=[change.pk]),
                                 {"outcome": "keep", "notes": "Nothing of concern reported."})
    assert response.status_code == 302
    assert change.reviews.get().notes == "Nothing of concern reported."


def test_the_audit_trail_is_read_only(as_user, size, alice):
    request_change(size, alice, Stage.PARTNERS)
    event = AuditEvent.objects.get(action="stage_request.created")
    client = as_user(alice)
    assert client.get(reverse("admin:releases_auditevent_changelist")).status_code == 200
    assert client.get(reverse("admin:releases_auditevent_add")).status_code == 403
    assert client.post(reverse("admin:releases_auditevent_delete", args=[event.pk]), {"post": "yes"}).status_code == 403
    page = client.get(reverse("admin:releases_auditevent_change", args=[event.pk])).content.decode()
    assert 'name="reason"' not in page


def test_a_pending_requests_page_has_approve_and_reject_buttons_but_not_for_the_requester(as_user, size, alice,
                                                                                         bob):
    request = request_change(size, alice, Stage.PARTNERS)
    change = reverse("admin:releases_stagechangerequest_change", args=[request.pk])
    approve = reverse("admin:releases_stagechangerequest_approve", args=[request.pk])
    page = as_user(alice).get(change).content.decode()
    assert f'href="{approve}"' not in page and 'value="reject_selected"' in page  # her own request
    client = as_user(bob)
    page = client.get(change).content.decode()
    assert f'href="{approve}"' in page and 'value="reject_selected"' in page
    assert RATIONALE in page
    _approve(client, request)
    request.refresh_from_db()
    assert request.status == Status.APPLIED
    page = client.get(change).content.decode()
    assert f'href="{approve}"' not in page


def test_the_audit_list_is_newest_first_links_its_targets_and_names_anonymous_downloads(as_user, size, alice, bob):
    """Issue #20, defect 9."""
    from releases.audit.chain import audit_record

    request = request_change(size, alice, Stage.PARTNERS)
    audit_record(actor=None, action="link.issued", target=size, data={"anonymous": True})
    page = as_user(bob).get(reverse("admin:releases_auditevent_changelist")).content.decode()
    assert page.index("link.issued") < page.index("stage_request.created")  # newest first
    assert f'href="{reverse("admin:releases_stagechangerequest_change", args=[request.pk])}"' in page
    at = page.index("link.issued")
    row = page[page.rindex("<tr", 0, at):page.index("</tr>", at)]
    assert "anonymous" in row and "system" not in row
    assert "<th" in page and '"before"' not in page  # before/after stay on the event's own page



def test_the_dashboard_is_linked_from_the_admin_home_and_shows_what_waits_on_staff(as_user, size, alice, bob, pat,
                                                                                  steve):
    """Issue #20, defect 5."""
    from registry.models import DataRemovalRequest
    from releases.access import grants as grant_service
    from tests.releases.conftest import make_grant, make_partner, make_size

    move(size, Stage.PARTNERS, requester=alice, approvers=[bob])
    partner = make_partner(alice, pat)
    ending = make_grant(partner, size, alice, days=10)
    other = make_size("mini-3m")
    move(other, Stage.PARTNERS, requester=alice, approvers=[bob])
    asked = grant_service.access_request_create(user=pat, size=other, purpose="Evaluating the larger size.")
    removal = DataRemovalRequest.objects.create(name="Ann", email="ann@example.org", text="line 3",
                                                reason="My text.")
    home = as_user(bob).get(reverse("admin:index")).content.decode()
    assert f'href="{reverse("releases-dashboard")}"' in home
    page = as_user(bob).get(reverse("releases-dashboard")).content.decode()
    assert f'href="{reverse("admin:releases_accessrequest_change", args=[asked.pk])}"' in page
    assert f'href="{reverse("admin:registry_dataremovalrequest_change", args=[removal.pk])}"' in page
    assert f'href="{reverse("admin:releases_accessgrant_change", args=[ending.pk])}"' in page
    assert 'href="/models/mini-3m/"' in page
    assert f'href="{reverse("releases-dashboard")}"' not in as_user(steve).get(reverse("admin:index")).content.decode()


def test_the_request_form_names_current_stages_asks_for_the_target_and_marks_required_fields(as_user, size,
                                                                                              alice):
    """Issue #20, defect 14."""
    page = as_user(alice).get(reverse("admin:releases_stagechangerequest_add")).content.decode()
    assert f"{size} — now Internal" in page
    assert '<option value="" selected>— choose the stage to move to —</option>' in page
    assert "(required for partners or public)" in page and 'class="required"' in page
    refused = as_user(alice).post(reverse("admin:releases_stagechangerequest_add"),
                                  {"model_size": size.pk, "rationale": RATIONALE})
    assert refused.status_code == 200 and not StageChangeRequest.objects.exists()


def test_a_request_says_in_words_what_is_missing_from_the_record(as_user, size, alice, bob, s3, tmp_path):
    """Issue #20, defect 3: a size with no files, evaluation or training run went out with no warning."""
    from tests.releases.conftest import upload

    bare = request_change(size, alice, Stage.PARTNERS)
    page = as_user(bob).get(reverse("admin:releases_stagechangerequest_change", args=[bare.pk])).content.decode()
    assert "has no files" in page and "No evaluation results" in page and "No training run" in page
    approve = as_user(bob).get(reverse("admin:releases_stagechangerequest_approve", args=[bare.pk])).content.decode()
    assert "has no files" in approve
    stage_requests.stage_request_cancel(request=bare, actor=alice)
    upload(size, tmp_path)
    filed = request_change(size, alice, Stage.PARTNERS)
    page = as_user(bob).get(reverse("admin:releases_stagechangerequest_change", args=[filed.pk])).content.decode()
    assert "has no files" not in page and "No evaluation results" in page


def test_a_request_says_in_words_where_it_was_decided(as_user, size, alice, bob):
    request = request_change(size, alice, Stage.PARTNERS)
    page = as_user(bob).get(reverse("admin:releases_stagechangerequest_change", args=[request.pk])).content.decode()
    assert "Here, by the approvals below" in page and "icon-no" not in page


def test_an_applied_request_shows_the_review_date_it_was_given(as_user, size, alice, bob):
    """Issue #20, defect 11: "Review by: -" on an applied request whose change had a date."""
    request = move(size, Stage.PARTNERS, requester=alice, approvers=[bob])
    due = StageChange.objects.get(request=request).review_by
    page = as_user(bob).get(reverse("admin:releases_stagechangerequest_change", args=[request.pk])).content.decode()
    assert f"{due:%Y-%m-%d} (the default interval)" in page


def test_a_request_has_a_discussion_on_the_record_and_policy_staff_are_told(as_user, size, alice, bob, steve):
    from django.core import mail

    from releases.models import StageRequestComment
    from releases.outbox.delivery import dispatch_due

    request = request_change(size, alice, Stage.PARTNERS)
    client = as_user(bob)
    client.post(reverse("admin:releases_stagechangerequest_comment", args=[request.pk]),
                {"text": "Has the red-team report for this revision come in?"})
    comment = StageRequestComment.objects.get()
    assert (comment.author, comment.request) == (bob, request)
    page = client.get(reverse("admin:releases_stagechangerequest_change", args=[request.pk])).content.decode()
    assert "Has the red-team report for this revision come in?" in page and 'id="discussion"' in page
    assert AuditEvent.objects.get(action="stage_request.commented").reason == comment.text
    dispatch_due()
    told = [m for m in mail.outbox if "commented" in m.subject]
    assert told and comment.text in told[-1].body and "alice@example.org" in told[-1].to
    as_user(steve).post(reverse("admin:releases_stagechangerequest_comment", args=[request.pk]), {"text": "x"})
    assert StageRequestComment.objects.count() == 1  # a staff member without the role cannot comment
