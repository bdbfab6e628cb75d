"""Access requests, grants and revocations through the services: who may, what is required, what is audited."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from config.errors import DomainError
from registry.errors import ModelSizeNotFound
from releases.access import grants, partners
from releases.access import rules as access
from releases.access.errors import AccessRequestNotPending, GrantAlreadyRevoked
from releases.governance import selectors
from releases.models import AccessRequest, AuditEvent
from releases.outbox.delivery import dispatch_due
from releases.roles import NotPolicyStaff
from tests.releases.conftest import make_grant, make_partner, move, publish_terms


@pytest.fixture
def lab(alice, pat):
    return make_partner(alice, pat)


def test_a_member_requests_and_staff_grant_with_a_quota(size, alice, bob, pat, lab):
    move(size, "partners", requester=alice, approvers=[bob])
    request = grants.access_request_create(user=pat, size=size, purpose="Study detection of generated text.")
    grant = grants.access_request_grant(request=request, actor=bob, expires_at=timezone.now() + timedelta(days=90),
                                        quota_links=5, quota_period_s=86400, reason="Known lab.")
    request.refresh_from_db()
    assert (request.status, request.grant, request.decided_by) == ("granted", grant, bob)
    assert (grant.partner, grant.model_size, grant.quota_links, grant.granted_by) == (lab, size, 5, bob)
    actions = list(AuditEvent.objects.values_list("action", flat=True))
    assert actions[-3:] == ["access_request.created", "grant.created", "access_request.granted"]


def test_a_refusal_needs_a_reason_and_the_request_stays_decided(size, alice, bob, pat, lab):
    move(size, "partners", requester=alice, approvers=[bob])
    request = grants.access_request_create(user=pat, size=size, purpose="Curiosity.")
    with pytest.raises(DomainError, match="reason"):
        grants.access_request_refuse(request=request, actor=bob, reason=" ")
    grants.access_request_refuse(request=request, actor=bob, reason="Purpose too vague.")
    assert AccessRequest.objects.get().decision_reason == "Purpose too vague."
    with pytest.raises(AccessRequestNotPending):
        grants.access_request_grant(request=request, actor=bob, expires_at=timezone.now() + timedelta(days=1))
    assert AuditEvent.objects.filter(action="access_request.refused", reason="Purpose too vague.").exists()


def test_internal_sizes_cannot_be_requested_and_plain_accounts_cannot_request(size, alice, bob, pat, rita, lab):
    with pytest.raises(ModelSizeNotFound):
        grants.access_request_create(user=pat, size=size, purpose="Please.")
    move(size, "partners", requester=alice, approvers=[bob])
    with pytest.raises(DomainError) as excinfo:
        grants.access_request_create(user=rita, size=size, purpose="Please.")
    assert excinfo.value.code == "not_a_partner"


def test_only_policy_staff_grant_and_revoke(size, alice, pat, rita, lab):
    with pytest.raises(NotPolicyStaff):
        make_grant(lab, size, rita)
    grant = make_grant(lab, size, alice)
    with pytest.raises(NotPolicyStaff):
        grants.grant_revoke(grant=grant, actor=pat, reason="Mine.")


def test_a_revocation_needs_a_reason_and_happens_once(size, alice, bob, lab):
    grant = make_grant(lab, size, alice)
    with pytest.raises(DomainError, match="reason"):
        grants.grant_revoke(grant=grant, actor=bob, reason="")
    grants.grant_revoke(grant=grant, actor=bob, reason="Breach.")
    with pytest.raises(GrantAlreadyRevoked):
        grants.grant_revoke(grant=grant, actor=alice, reason="Again.")
    assert AuditEvent.objects.filter(action="grant.revoked").count() == 1


def test_a_grant_opens_nothing_while_the_size_is_internal(size, alice, pat, lab):
    publish_terms(alice, "v1", pat)
    make_grant(lab, size, alice)
    assert access.may(pat, size, access.DOWNLOAD).reason == "stage_internal"


def test_a_new_terms_version_requires_acceptance_again(size, alice, bob, pat, lab):
    publish_terms(alice, "v1", pat)
    make_grant(lab, size, alice)
    move(size, "partners", requester=alice, approvers=[bob])
    assert access.may(pat, size, access.DOWNLOAD).allowed
    v2 = partners.terms_publish(version="v2", text="Partner terms v2.", actor=alice)
    assert access.may(pat, size, access.DOWNLOAD).reason == "terms_not_accepted"
    partners.terms_accept(user=pat, terms=v2)
    decision = access.may(pat, size, access.DOWNLOAD)
    assert decision.allowed and decision.terms == v2


def test_deactivating_a_partner_stops_its_members(size, alice, bob, pat, lab):
    publish_terms(alice, "v1", pat)
    make_grant(lab, size, alice)
    move(size, "partners", requester=alice, approvers=[bob])
    partners.partner_set_active(partner=lab, active=False, actor=bob, reason="Agreement lapsed.")
    assert access.may(pat, size, access.DOWNLOAD).reason == "partner_inactive"
    partners.partner_set_active(partner=lab, active=True, actor=bob, reason="Renewed.")
    assert access.may(pat, size, access.DOWNLOAD).allowed


def test_who_could_download_names_the_partners_with_active_grants_then(size, alice, bob, pat, lab):
    move(size, "partners", requester=alice, approvers=[bob])
    other = make_partner(alice, name="Other Lab", kind="research")
    grant = make_grant(lab, size, alice, starts_in_days=-5, days=10)
    make_grant(other, size, alice, starts_in_days=1)
    now = timezone.now()
    assert selectors.who_could_download(size=size, when=now).grantees == ["Example Security Lab"]
    grants.grant_revoke(grant=grant, actor=alice, reason="Ended.")
    assert selectors.who_could_download(size=size, when=now).grantees == ["Example Security Lab"]  # still then
    assert selectors.who_could_download(size=size, when=timezone.now()).grantees == []
    assert selectors.who_could_download(size=size, when=now + timedelta(days=2)).grantees == ["Other Lab"]


def test_withdrawal_emails_the_members_of_partners_with_active_grants(size, alice, bob, carol, pat, rita, lab):
    make_grant(lab, size, alice)
    revoked_lab = make_partner(alice, rita, name="Revoked Lab", kind="industry")
    grants.grant_revoke(grant=make_grant(revoked_lab, size, alice), actor=alice, reason="Ended.")
    move(size, "partners", requester=alice, approvers=[bob])
    dispatch_due()
    mail.outbox.clear()
    move(size, "withdrawn", requester=alice, approvers=[carol])
    dispatch_due()
    withdrawal = [m for m in mail.outbox if "has been withdrawn" in m.subject]
    assert len(withdrawal) == 1
    assert withdrawal[0].to == ["pat@example.org"]
    assert "keep working only until they expire" in withdrawal[0].body
