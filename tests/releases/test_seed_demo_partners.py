from io import StringIO

from django.core.management import call_command

from releases.access import rules as access
from releases.models import AccessGrant, AuditEvent, PartnerMember, TermsAcceptance
from tests.releases.conftest import make_size, move


def test_it_seeds_pats_partner_with_a_grant_that_opens_mini_3m_at_the_partners_stage(alice, bob, pat, rita):
    size = make_size("mini-3m")
    call_command("seed_demo_partners", stdout=StringIO())
    call_command("seed_demo_partners", stdout=StringIO())  # idempotent
    member = PartnerMember.objects.select_related("partner").get(user=pat)
    assert (member.partner.name, member.partner.kind) == ("Example Security Lab", "security")
    assert TermsAcceptance.objects.get(user=pat).terms.version == "v1"
    grant = AccessGrant.objects.get()
    assert (grant.model_size, grant.granted_by) == (size, alice)
    assert AuditEvent.objects.filter(action="grant.created").count() == 1
    assert access.may(pat, size, access.DOWNLOAD).reason == "stage_internal"  # stage untouched
    move(size, "partners", requester=alice, approvers=[bob])
    assert access.may(pat, size, access.DOWNLOAD).allowed
    assert access.may(rita, size, access.DOWNLOAD).reason == "not_a_partner"
    assert access.may(None, size, access.DOWNLOAD).reason == "not_authenticated"
