"""The partner admin through the test client: grants, revocations and request decisions need reasons."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from knox.models import AuthToken

from releases.access import grants, tokens
from releases.access.errors import GrantAlreadyHeld
from releases.models import AccessGrant, AccessRequest, AuditEvent, PartnerMember, PartnerOrganisation
from tests.releases.conftest import make_grant, make_partner, move, publish_terms

CHANGELIST = "/admin/releases/{}/"


@pytest.fixture
def staff(alice) -> Client:
    client = Client()
    client.force_login(alice)
    return client


@pytest.fixture
def lab(alice, pat):
    return make_partner(alice, pat)


def _dt(when) -> dict:
    return {"_0": when.strftime("%Y-%m-%d"), "_1": when.strftime("%H:%M:%S")}


def test_staff_grant_a_size_in_the_add_form(staff, size, lab, alice):
    start, end = timezone.now(), timezone.now() + timedelta(days=30)
    data = {"partner": lab.pk, "model_size": size.pk, "purpose": "Red-teaming.", "quota_links": 3,
            "quota_period_s": 3600}
    data.update({f"starts_at{k}": v for k, v in _dt(start).items()})
    data.update({f"expires_at{k}": v for k, v in _dt(end).items()})
    response = staff.post("/admin/releases/accessgrant/add/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    grant = AccessGrant.objects.get()
    assert (grant.granted_by, grant.quota_links) == (alice, 3)
    assert AuditEvent.objects.filter(action="grant.created").exists()


def test_a_grant_that_ends_before_it_starts_is_refused_by_the_form(staff, size, lab):
    start = timezone.now()
    data = {"partner": lab.pk, "model_size": size.pk, "purpose": "x"}
    data.update({f"starts_at{k}": v for k, v in _dt(start).items()})
    data.update({f"expires_at{k}": v for k, v in _dt(start - timedelta(days=1)).items()})
    response = staff.post("/admin/releases/accessgrant/add/", data)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "grant_ends_after_start" in str(errors), errors
    assert not AccessGrant.objects.exists()


def test_revoking_needs_a_reason(staff, size, lab, alice):
    grant = make_grant(lab, size, alice)
    url = CHANGELIST.format("accessgrant")
    asked = staff.post(url, {"action": "revoke_selected", "_selected_action": [grant.pk]})
    assert asked.status_code == 200 and "reason" in asked.content.decode()
    empty = staff.post(url, {"action": "revoke_selected", "_selected_action": [grant.pk], "reason": ""})
    assert empty.status_code == 200
    grant.refresh_from_db()
    assert grant.revoked_at is None
    staff.post(url, {"action": "revoke_selected", "_selected_action": [grant.pk], "reason": "Breach."})
    grant.refresh_from_db()
    assert (grant.revoked_by, grant.revoke_reason) == (alice, "Breach.")
    assert AuditEvent.objects.filter(action="grant.revoked", reason="Breach.").exists()


def test_the_grant_page_shows_what_may_answers_each_member(staff, size, lab, alice, bob):
    publish_terms(alice, "v1")
    grant = make_grant(lab, size, alice)
    move(size, "partners", requester=alice, approvers=[bob])
    page = staff.get(f"/admin/releases/accessgrant/{grant.pk}/change/").content.decode()
    assert "<strong>pat</strong>: terms_not_accepted" in page


def test_requests_are_granted_or_refused_with_a_reason(staff, size, lab, alice, bob, pat):
    move(size, "partners", requester=alice, approvers=[bob])
    first = grants.access_request_create(user=pat, size=size, purpose="Detectors.")
    url = CHANGELIST.format("accessrequest")
    staff.post(url, {"action": "grant_selected", "_selected_action": [first.pk], "expires_in_days": 90,
                     "quota_links": 5, "quota_period_s": 86400, "reason": "Known lab."})
    first.refresh_from_db()
    assert first.status == "granted" and first.grant.quota_links == 5
    with pytest.raises(GrantAlreadyHeld):  # issue #20, defect 6: no request for a grant already held
        grants.access_request_create(user=pat, size=size, purpose="More.")
    grants.grant_revoke(grant=first.grant, actor=alice, reason="Project ended.")
    second = grants.access_request_create(user=pat, size=size, purpose="More.")
    assert staff.post(url, {"action": "refuse_selected", "_selected_action": [second.pk], "reason": ""}
                      ).status_code == 200
    assert AccessRequest.objects.get(pk=second.pk).status == "pending"
    staff.post(url, {"action": "refuse_selected", "_selected_action": [second.pk], "reason": "One grant suffices."})
    assert AccessRequest.objects.get(pk=second.pk).decision_reason == "One grant suffices."


def test_a_requests_page_has_grant_and_refuse_buttons_and_the_organisations_grants(staff, size, lab, alice,
                                                                                     bob, pat):
    """Issue #20, defect 6."""
    from tests.releases.conftest import make_size

    move(size, "partners", requester=alice, approvers=[bob])
    held = make_grant(lab, size, alice)
    other = make_size("mini-3m")
    move(other, "partners", requester=alice, approvers=[bob])
    asked = grants.access_request_create(user=pat, size=other, purpose="The larger size.")
    page = staff.get(f"/admin/releases/accessrequest/{asked.pk}/change/").content.decode()
    assert 'value="grant_selected"' in page and 'value="refuse_selected"' in page
    assert f'href="/admin/releases/accessgrant/{held.pk}/change/"' in page and "mini-1m: active" in page
    form = staff.post(CHANGELIST.format("accessrequest"), {"action": "grant_selected", "_selected_action": [asked.pk]})
    assert form.status_code == 200 and 'name="expires_in_days"' in form.content.decode()  # asks before granting
    assert AccessRequest.objects.get(pk=asked.pk).status == "pending"


def test_partners_and_members_are_added_through_the_services(staff, rita):
    response = staff.post("/admin/releases/partnerorganisation/add/", {
        "name": "Detection Lab", "kind": "research", "contact_name": "", "contact_email": "d@example.org",
        "members-TOTAL_FORMS": "1", "members-INITIAL_FORMS": "0", "members-0-user": rita.pk, "members-0-role": "member",
    })
    assert response.status_code == 302, response.content.decode()[:3000]
    partner = PartnerOrganisation.objects.get(name="Detection Lab")
    assert PartnerMember.objects.get(user=rita).partner == partner
    assert list(AuditEvent.objects.filter(target_type="releases.partnerorganisation")
                .values_list("action", flat=True)) == ["partner.created", "partner.member_added"]


@pytest.mark.parametrize("who", ["alice", "admin_user"])
def test_nobody_creates_a_token_for_another_account_in_the_admin(who, pat, request):
    """The attack: a staff account mints bob's key in the admin and approves in his name. Policy staff and a
    superuser alike get no add page, and a forged POST is refused with nothing created."""
    client = Client()
    client.force_login(request.getfixturevalue(who))
    assert client.get("/admin/knox/authtoken/add/").status_code == 403
    response = client.post("/admin/knox/authtoken/add/", {"user": pat.pk, "name": "pat laptop", "expires_days": 7})
    assert response.status_code == 403
    assert not AuthToken.objects.exists()
    assert not AuditEvent.objects.filter(action="token.created").exists()


def test_policy_staff_revoke_a_members_token_in_the_admin_without_seeing_its_key(staff, pat):
    from releases.access import tokens

    token, key = tokens.token_create(user=pat, name="pat laptop", expires_days=7, actor=pat)
    listing = staff.get("/admin/knox/authtoken/").content.decode()
    assert token.token_key in listing and key not in listing
    staff.post("/admin/knox/authtoken/", {"action": "revoke_selected", "_selected_action": [token.pk]})
    assert not AuthToken.objects.exists()
    assert AuditEvent.objects.filter(action="token.revoked", actor_label="alice").exists()


@pytest.mark.parametrize("model", ["partnerorganisation", "termsversion", "termsacceptance", "accessrequest",
                                   "accessgrant", "issuedlink"])
def test_each_list_page_renders_for_policy_staff_and_add_pages_where_staff_add(staff, size, lab, alice, model):
    make_grant(lab, size, alice)
    assert staff.get(f"/admin/releases/{model}/").status_code == 200
    if model in ("partnerorganisation", "termsversion", "accessgrant"):
        assert staff.get(f"/admin/releases/{model}/add/").status_code == 200
    assert staff.get("/admin/knox/authtoken/").status_code == 200
    assert staff.get("/admin/knox/authtoken/add/").status_code == 403


def test_the_admin_never_prints_a_tokens_digest(admin_user, pat):
    """Issue #20, defect 15: knox names a token by its digest, and the admin printed that name."""
    token, _ = tokens.token_create(user=pat, name="pat laptop", expires_days=7, actor=pat)
    assert token.digest not in str(token) and token.token_key in str(token)
    superuser = Client()
    superuser.force_login(admin_user)
    confirm = superuser.get(f"/admin/auth/user/{pat.pk}/delete/").content.decode()
    assert token.digest not in confirm
    assert token.digest not in superuser.get("/admin/").content.decode()
