"""Each partner-admin write is an audit event in the name of the staff member who made it: edits of a partner,
members leaving, terms, access decisions, deactivation; and a grant or terms version is never re-saved."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from releases.access import grants
from releases.models import AccessGrant, AuditEvent, PartnerMember, TermsVersion
from tests.releases import test_partner_admin
from tests.releases.conftest import make_grant, move, publish_terms

# The partner admin tests' fixtures: alice's admin client and pat's lab.
staff, lab = test_partner_admin.staff, test_partner_admin.lab

ADMIN = "/admin/releases/{}/"


def _last(action: str) -> AuditEvent:
    return AuditEvent.objects.filter(action=action).order_by("-id").first()


def _partner_form(partner, **changes) -> dict:
    return {"name": partner.name, "kind": partner.kind, "contact_name": partner.contact_name,
            "contact_email": partner.contact_email, "members-TOTAL_FORMS": 0, "members-INITIAL_FORMS": 0, **changes}


def test_editing_a_partners_contact_records_what_it_was(staff, lab):
    response = staff.post(ADMIN.format("partnerorganisation") + f"{lab.pk}/change/",
                          _partner_form(lab, contact_email="security@example.org"))
    assert response.status_code == 302, response.content.decode()[:2000]
    event = _last("partner.updated")
    assert (event.actor_label, event.ip, event.target_id) == ("alice", "127.0.0.1", str(lab.pk))
    assert (event.before, event.after) == ({"contact_email": "lab@example.org"},
                                           {"contact_email": "security@example.org"})


def test_removing_a_member_in_the_admin_ends_the_membership_on_the_record(staff, lab, pat):
    member = PartnerMember.objects.get(user=pat)
    response = staff.post(ADMIN.format("partnerorganisation") + f"{lab.pk}/change/", _partner_form(lab, **{
        "members-TOTAL_FORMS": 1, "members-INITIAL_FORMS": 1, "members-0-id": member.pk,
        "members-0-partner": lab.pk, "members-0-user": pat.pk, "members-0-DELETE": "on"}))
    assert response.status_code == 302, response.content.decode()[:2000]
    assert PartnerMember.objects.get(pk=member.pk).left_at is not None  # kept, ended
    event = _last("partner.member_removed")
    assert (event.actor_label, event.ip, event.data["username"]) == ("alice", "127.0.0.1", "pat")


def test_deactivating_a_partner_records_the_reason(staff, lab):
    staff.post(ADMIN.format("partnerorganisation"), {"action": "deactivate_selected", "_selected_action": [lab.pk],
                                                     "reason": "Contract ended."})
    event = _last("partner.deactivated")
    assert (event.actor_label, event.before, event.after, event.reason) == ("alice", True, False, "Contract ended.")


def test_terms_published_in_the_admin_are_recorded(staff):
    now = timezone.now()
    response = staff.post(ADMIN.format("termsversion") + "add/", {
        "version": "v2", "text": "No redistribution.", "published_at_0": now.strftime("%Y-%m-%d"),
        "published_at_1": now.strftime("%H:%M:%S")})
    assert response.status_code == 302, response.content.decode()[:2000]
    event = _last("terms.published")
    assert (event.actor_label, event.ip, event.data["version"]) == ("alice", "127.0.0.1", "v2")


def test_an_access_decision_in_the_admin_records_the_status_change(staff, size, lab, alice, bob, pat):
    move(size, "partners", requester=alice, approvers=[bob])
    request = grants.access_request_create(user=pat, size=size, purpose="Detectors.")
    staff.post(ADMIN.format("accessrequest"), {"action": "grant_selected", "_selected_action": [request.pk],
                                               "expires_in_days": 30, "reason": "Known lab."})
    event = _last("access_request.granted")
    assert (event.actor_label, event.ip, event.before, event.after, event.reason) == (
        "alice", "127.0.0.1", "pending", "granted", "Known lab.")
    assert _last("grant.created").actor_label == "alice"


@pytest.mark.parametrize("model", ["accessgrant", "termsversion"])
def test_saving_a_granted_or_published_record_again_changes_nothing(staff, alice, size, lab, model):
    """Nobody's role may change these; were one given the permission, saving the read-only form must neither
    grant again nor publish again."""
    app_label, codename = "releases", f"change_{model}"
    alice.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    record = make_grant(lab, size, alice) if model == "accessgrant" else publish_terms(alice, "v1")
    events = AuditEvent.objects.count()
    response = staff.post(ADMIN.format(model) + f"{record.pk}/change/", {})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert AccessGrant.objects.count() == (1 if model == "accessgrant" else 0)
    assert TermsVersion.objects.count() == (1 if model == "termsversion" else 0)
    assert AuditEvent.objects.count() == events


def test_a_grant_given_in_the_admin_expires_as_entered(staff, size, lab):
    start = timezone.now()
    end = start + timedelta(days=30)
    data = {"partner": lab.pk, "model_size": size.pk, "purpose": "Red-teaming."}
    for name, when in (("starts_at", start), ("expires_at", end)):
        data.update({f"{name}_0": when.strftime("%Y-%m-%d"), f"{name}_1": when.strftime("%H:%M:%S")})
    assert staff.post(ADMIN.format("accessgrant") + "add/", data).status_code == 302
    event = _last("grant.created")
    assert (event.actor_label, event.ip, event.after["expires_at"][:10]) == (
        "alice", "127.0.0.1", end.strftime("%Y-%m-%d"))
