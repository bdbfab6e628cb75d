"""Becoming a partner (issue #20, defect 2): a researcher applies in the portal, policy staff accept or refuse in
the admin, and an accepted applicant is a member who may ask for sizes."""

import pytest
from django.test import Client

from releases.access import applications
from releases.access.errors import AccessRequestNotPending, InvalidPartnerAction
from releases.models import AuditEvent, PartnerApplication, PartnerMember, TermsAcceptance
from releases.roles import NotPermitted
from tests.releases.conftest import make_partner, move, publish_terms, upload

pytestmark = pytest.mark.django_db

FORM = {"organisation": "Riverside Univ. NLP Lab", "kind": "research", "contact_name": "Rita R.",
        "contact_email": "rita@riverside.example", "intended_use": "Detection research on model outputs.",
        "agrees_to_terms": "on"}


@pytest.fixture
def researcher(rita) -> Client:
    client = Client()
    client.force_login(rita)
    return client


@pytest.fixture
def staff(alice) -> Client:
    client = Client()
    client.force_login(alice)
    return client


def test_a_researcher_is_offered_an_application_not_terms_for_organisations(researcher, alice):
    publish_terms(alice, "v1")
    page = researcher.get("/portal/").content.decode()
    assert 'id="partner-application"' in page and "agrees to the terms of use v1" in page
    assert 'id="terms-to-accept"' not in page and "I accept the terms" not in page


def test_apply_then_accepted_in_the_admin_makes_a_member_who_accepted_the_terms(researcher, staff, rita, alice,
                                                                                 s3, size, bob, tmp_path):
    terms = publish_terms(alice, "v1")
    answer = researcher.post("/portal/applications/", FORM, follow=True)
    assert "Application sent" in answer.content.decode()
    application = PartnerApplication.objects.get()
    assert (application.applicant, application.status, application.terms) == (rita, "pending", terms)
    assert AuditEvent.objects.filter(action="partner_application.created").count() == 1
    page = staff.get(f"/admin/releases/partnerapplication/{application.pk}/change/").content.decode()
    assert 'value="accept_selected"' in page and "Detection research on model outputs." in page
    assert 'href="/admin/releases/partnerapplication/' in staff.get("/admin/releases/dashboard/").content.decode()
    url = "/admin/releases/partnerapplication/"
    asked = staff.post(url, {"action": "accept_selected", "_selected_action": [application.pk]})
    assert asked.status_code == 200 and 'name="confirm"' in asked.content.decode()  # confirmation first
    staff.post(url, {"action": "accept_selected", "_selected_action": [application.pk], "reason": "Known lab.",
                     "confirm": "on"})
    application.refresh_from_db()
    assert application.status == "accepted" and application.partner.name == "Riverside Univ. NLP Lab"
    assert PartnerMember.objects.current().get(user=rita).partner == application.partner
    assert TermsAcceptance.objects.filter(user=rita, terms=terms).exists()
    # Now a member: she asks for sizes like any partner.
    upload(size, tmp_path)
    move(size, "partners", requester=alice, approvers=[bob])
    page = researcher.get("/portal/").content.decode()
    assert "Riverside Univ. NLP Lab" in page and 'id="partner-application"' not in page
    assert f'<option value="{size.slug}"' in page


def test_a_refusal_needs_a_reason_and_the_applicant_sees_it(researcher, staff, rita):
    researcher.post("/portal/applications/", FORM)
    application = PartnerApplication.objects.get()
    url = "/admin/releases/partnerapplication/"
    staff.post(url, {"action": "refuse_selected", "_selected_action": [application.pk], "reason": ""})
    assert PartnerApplication.objects.get().status == "pending"
    staff.post(url, {"action": "refuse_selected", "_selected_action": [application.pk],
                     "reason": "We could not confirm the lab."})
    assert "We could not confirm the lab." in researcher.get("/portal/").content.decode()
    assert not PartnerMember.objects.filter(user=rita).exists()


def test_members_duplicates_and_missing_agreement_are_refused(rita, pat, alice):
    publish_terms(alice, "v1")
    make_partner(alice, pat)
    fields = {key: value for key, value in FORM.items() if key != "agrees_to_terms"}
    with pytest.raises(applications.AlreadyAPartner):
        applications.partner_application_create(user=pat, agrees_to_terms=True, **fields)
    with pytest.raises(InvalidPartnerAction, match="Agree to the terms"):
        applications.partner_application_create(user=rita, agrees_to_terms=False, **fields)
    applications.partner_application_create(user=rita, agrees_to_terms=True, **fields)
    with pytest.raises(AccessRequestNotPending):
        applications.partner_application_create(user=rita, agrees_to_terms=True, **fields)
    assert PartnerApplication.objects.count() == 1


def test_only_those_who_manage_partners_decide(rita, steve, otto):
    fields = {key: value for key, value in FORM.items() if key != "agrees_to_terms"}
    application = applications.partner_application_create(user=rita, agrees_to_terms=True, **fields)
    for who in (steve, otto, rita):
        with pytest.raises(NotPermitted):
            applications.partner_application_accept(application=application, actor=who)
    assert PartnerApplication.objects.get().status == "pending"


def test_a_size_page_tells_a_researcher_how_to_become_a_partner(researcher, s3, size, alice, bob, tmp_path):
    upload(size, tmp_path)
    move(size, "partners", requester=alice, approvers=[bob])
    html = researcher.get(f"/models/{size.slug}/").content.decode()
    assert 'href="/portal/#become-a-partner"' in html and "Apply for your organisation to become a partner" in html


def test_an_application_under_an_existing_partners_name_is_never_joined_to_it(researcher, staff, rita, alice, pat):
    """Anyone may type a real partner's name: accepting must not make them a member of it."""
    make_partner(alice, pat, name="Example Security Lab")
    researcher.post("/portal/applications/", {**FORM, "organisation": "example security lab"})
    application = PartnerApplication.objects.get()
    with pytest.raises(applications.NameTaken):
        applications.partner_application_accept(application=application, actor=alice)
    application.refresh_from_db()
    assert application.status == "pending" and not PartnerMember.objects.filter(user=rita).exists()
