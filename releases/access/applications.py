"""Becoming a partner: someone with an account applies for their organisation (a form with the organisation,
a contact, the intended use and agreement to the terms of use in force); policy staff accept or refuse, with a
reason, as they decide access requests. Accepting creates the organisation, makes the applicant its
first partner admin and records their acceptance of the terms they agreed to. All audited.

An accepted application opens nothing by itself: the organisation then asks for sizes (access requests), and
policy staff grant them.
"""

from django.db import transaction
from django.utils import timezone

from config.errors import duplicate_refused
from releases.access import partners
from releases.access.errors import AccessRequestNotPending, InvalidPartnerAction, required_text
from releases.access.models import PartnerApplication, PartnerMember, PartnerOrganisation
from releases.access.rules import terms_in_force
from releases.audit.chain import audit_record
from releases.roles import MANAGE_PARTNERS, require

Status = PartnerApplication.Status


class AlreadyAPartner(InvalidPartnerAction):
    code = "already_a_partner"


class NameTaken(InvalidPartnerAction):
    code = "organisation_exists"


@transaction.atomic
def partner_application_create(*, user, organisation: str, kind: str, contact_name: str, contact_email: str,
                               intended_use: str, agrees_to_terms: bool, ip: str | None = None) -> PartnerApplication:
    """An application from `user`, who must not be a member already nor have one pending."""
    if PartnerMember.objects.current().filter(user=user).exists():
        raise AlreadyAPartner("You are already a member of a partner organisation; ask for sizes in the portal.")
    waiting = AccessRequestNotPending("You have an application waiting for policy staff already.")
    if PartnerApplication.objects.filter(applicant=user, status=Status.PENDING).exists():
        raise waiting
    organisation = required_text(organisation, "organisation", "Name the organisation you apply for.",
                                 max_chars=200)
    if kind not in PartnerOrganisation.Kind.values:
        raise InvalidPartnerAction(f"Unknown kind {kind!r}.", fields={"kind": [str(PartnerOrganisation.Kind.values)]})
    contact_name = required_text(contact_name, "contact_name", "Name a contact at the organisation.",
                                 max_chars=200)
    contact_email = required_text(contact_email, "contact_email", "Give the contact's email address.",
                                  max_chars=254)
    intended_use = required_text(intended_use, "intended_use", "Say what the organisation would use the models for.")
    terms = terms_in_force()
    if terms is not None and not agrees_to_terms:
        raise InvalidPartnerAction(f"Agree to the terms of use {terms.version} to apply.",
                                   fields={"agrees_to_terms": ["Required."]})
    with duplicate_refused(waiting):
        application = PartnerApplication.objects.create(
            applicant=user, organisation=organisation, kind=kind, contact_name=contact_name,
            contact_email=contact_email, intended_use=intended_use, terms=terms)
    audit_record(actor=user, action="partner_application.created", target=application, reason=intended_use, ip=ip,
                 after={"organisation": organisation, "kind": kind, "contact_email": contact_email,
                        "terms_version": terms.version if terms else None})
    return application


def _pending(application: PartnerApplication) -> PartnerApplication:
    locked = PartnerApplication.objects.select_for_update().get(pk=application.pk)
    if locked.status != Status.PENDING:
        raise AccessRequestNotPending(f"Application #{locked.pk} is {locked.status}; only pending ones are decided.")
    return locked


@transaction.atomic
def partner_application_accept(*, application: PartnerApplication, actor, reason: str = "",
                               ip: str | None = None) -> PartnerApplication:
    """Create the organisation and make the applicant its partner admin (a name already taken is refused)."""
    require(actor, MANAGE_PARTNERS, to="decide partner applications")
    application = _pending(application)
    if PartnerOrganisation.objects.filter(name__iexact=application.organisation).exists():
        # Never joined by name: anyone may apply under a real partner's name. Staff who know the applicant
        # belongs there add them on that organisation's page, where its contact can be asked first.
        raise NameTaken(f"An organisation named {application.organisation!r} is a partner already; refuse this "
                        "application, or add the applicant to that organisation on its page after checking with "
                        "its contact.")
    partner = partners.partner_create(
        name=application.organisation, kind=application.kind, contact_name=application.contact_name,
        contact_email=application.contact_email, actor=actor, ip=ip)
    # The applicant speaks for the organisation: they become its first partner admin and invite the others.
    partners.partner_member_add(partner=partner, user=application.applicant, actor=actor,
                                role=PartnerMember.Role.ADMIN, ip=ip)
    if application.terms is not None:  # agreed to when applying: recorded as the applicant's acceptance
        partners.terms_accept(user=application.applicant, terms=application.terms)
    application.status, application.partner = Status.ACCEPTED, partner
    application.decided_by, application.decided_at = actor, timezone.now()
    application.decision_reason = (reason or "").strip()
    application.save(update_fields=["status", "partner", "decided_by", "decided_at", "decision_reason"])
    audit_record(actor=actor, action="partner_application.accepted", target=application, reason=reason, ip=ip,
                 data={"partner": partner.name, "applicant": application.applicant.get_username()})
    return application


@transaction.atomic
def partner_application_refuse(*, application: PartnerApplication, actor, reason: str,
                               ip: str | None = None) -> PartnerApplication:
    require(actor, MANAGE_PARTNERS, to="decide partner applications")
    reason = required_text(reason, "reason", "Say why the application is refused; the applicant sees it.")
    application = _pending(application)
    application.status, application.decided_by, application.decided_at = Status.REFUSED, actor, timezone.now()
    application.decision_reason = reason
    application.save(update_fields=["status", "decided_by", "decided_at", "decision_reason"])
    audit_record(actor=actor, action="partner_application.refused", target=application, reason=reason, ip=ip)
    return application


def applications_of(user) -> list[PartnerApplication]:
    return list(PartnerApplication.objects.filter(applicant=user))
