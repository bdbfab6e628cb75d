"""Grants that end (issue #20): notices 30, 7 and 1 days before through the outbox, renewal requests from
members, extensions by policy staff."""

from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from releases.access import grants, renewals
from releases.access.errors import InvalidPartnerAction
from releases.models import AccessRequest, AuditEvent, GrantExpiryNotice
from releases.outbox.delivery import dispatch_due
from releases.roles import NotPermitted
from tests.releases.conftest import make_grant, make_partner, move, publish_terms

pytestmark = pytest.mark.django_db


@pytest.fixture
def lab(size, alice, bob, pat):
    move(size, "partners", requester=alice, approvers=[bob])
    partner = make_partner(alice, pat)
    publish_terms(alice, "v1", pat)
    return partner


def _notices(grant) -> list[int]:
    return sorted(GrantExpiryNotice.objects.filter(grant=grant).values_list("days_before", flat=True))


def test_notices_go_once_at_30_7_and_1_days_and_again_after_an_extension(lab, size, alice, pat, settings):
    settings.STAGEGATE_WEBHOOK_URLS = ["https://hooks.example.org/stagegate"]
    grant = make_grant(lab, size, alice, days=40)
    now = timezone.now()
    assert renewals.grant_expiry_notices_send(now=now) == []  # 40 days left
    assert renewals.grant_expiry_notices_send(now=now + timedelta(days=11)) == [grant.pk]  # 29 left: 30-day notice
    assert renewals.grant_expiry_notices_send(now=now + timedelta(days=12)) == []  # once
    assert renewals.grant_expiry_notices_send(now=now + timedelta(days=34)) == [grant.pk]  # 6 left: 7-day notice
    assert renewals.grant_expiry_notices_send(now=now + timedelta(days=39, hours=2)) == [grant.pk]  # the last day
    assert _notices(grant) == [1, 7, 30]
    dispatch_due()
    sent = [m for m in mail.outbox if "ends" in m.subject]
    assert len(sent) == 3 and pat.email in sent[0].to and "request a renewal" in sent[0].body
    renewals.grant_extend(grant=grant, actor=alice, expires_at=grant.expires_at + timedelta(days=90),
                          reason="Project extended.")
    assert renewals.grant_expiry_notices_send(now=now + timedelta(days=39, hours=3)) == []  # 90 days left again
    assert renewals.grant_expiry_notices_send(now=now + timedelta(days=120)) == [grant.pk]  # the new end's notice


def test_a_grant_first_seen_close_to_its_end_gets_only_the_nearest_notice(lab, size, alice):
    grant = make_grant(lab, size, alice, days=5)
    assert renewals.grant_expiry_notices_send() == [grant.pk]
    assert _notices(grant) == [7, 30]  # the 30-day notice is not sent late; the 1-day one still will be


def test_a_member_asks_to_renew_in_the_portal_and_staff_extend_it(lab, size, alice, pat, rita):
    grant = make_grant(lab, size, alice, days=10)
    member = Client()
    member.force_login(pat)
    page = member.get("/portal/").content.decode()
    assert f'action="/portal/grants/{grant.pk}/renew/"' in page
    member.post(f"/portal/grants/{grant.pk}/renew/", {"purpose": "Our evaluation runs another quarter."})
    renewal = AccessRequest.objects.get(renewal_of=grant)
    assert renewal.status == "pending" and renewal.partner == lab
    with pytest.raises(Exception, match="already waiting"):
        renewals.grant_renewal_request(user=pat, grant=grant, purpose="Again.")
    with pytest.raises(InvalidPartnerAction):
        renewals.grant_renewal_request(user=rita, grant=grant, purpose="Not mine.")
    with pytest.raises(NotPermitted):
        grants.access_request_grant(request=renewal, actor=pat, expires_at=grant.expires_at + timedelta(days=90))
    new_end = grant.expires_at + timedelta(days=90)
    extended = grants.access_request_grant(request=renewal, actor=alice, expires_at=new_end, reason="Fine.")
    assert extended.pk == grant.pk and extended.expires_at == new_end  # the same grant, not a second one
    renewal.refresh_from_db()
    assert renewal.status == "granted"
    event = AuditEvent.objects.get(action="grant.extended")
    assert event.before["expires_at"] != event.after["expires_at"] and event.reason == "Fine."


def test_renewal_is_asked_in_the_last_30_days_and_extensions_move_the_end_later(lab, size, alice, pat):
    grant = make_grant(lab, size, alice, days=90)
    with pytest.raises(InvalidPartnerAction, match="last 30 days"):
        renewals.grant_renewal_request(user=pat, grant=grant, purpose="Early.")
    with pytest.raises(InvalidPartnerAction):
        renewals.grant_extend(grant=grant, actor=alice, expires_at=grant.expires_at - timedelta(days=1), reason="x")
    with pytest.raises(InvalidPartnerAction):
        renewals.grant_extend(grant=grant, actor=alice, expires_at=grant.expires_at + timedelta(days=1), reason="")


def test_staff_extend_a_grant_in_the_admin_with_a_reason(lab, size, alice):
    grant = make_grant(lab, size, alice, days=3)
    staff = Client()
    staff.force_login(alice)
    new_end = (grant.expires_at + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M")
    staff.post("/admin/releases/accessgrant/", {"action": "extend_selected", "_selected_action": [grant.pk],
                                                "expires_at": new_end, "reason": "Renewed by phone."})
    grant.refresh_from_db()
    assert grant.expires_at.strftime("%Y-%m-%dT%H:%M") == new_end
