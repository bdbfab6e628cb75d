"""Writes about partners: organisations, their members, the terms of use and their acceptance.

Each function is one atomic step that writes its audit row.
"""

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from config.errors import duplicate_refused
from releases.access.errors import InvalidPartnerAction
from releases.access.models import (
    PartnerActivity,
    PartnerMember,
    PartnerOrganisation,
    TermsAcceptance,
    TermsVersion,
)
from releases.audit.chain import audit_record
from releases.roles import MANAGE_PARTNERS, PUBLISH_TERMS, require


# --------------------------------------------------------------------------- organisations and members
@transaction.atomic
def partner_create(*, name: str, kind: str, actor, contact_name: str = "", contact_email: str = "",
                   ip: str | None = None) -> PartnerOrganisation:
    require(actor, MANAGE_PARTNERS, to="manage partner organisations")
    name = (name or "").strip()
    if not name:
        raise InvalidPartnerAction("A partner organisation needs a name.", fields={"name": ["Required."]})
    if kind not in PartnerOrganisation.Kind.values:
        raise InvalidPartnerAction(f"Unknown kind {kind!r}.", fields={"kind": [str(PartnerOrganisation.Kind.values)]})
    partner = PartnerOrganisation.objects.create(name=name, kind=kind, contact_name=contact_name,
                                                 contact_email=contact_email)
    PartnerActivity.objects.create(partner=partner, active=True, at=partner.created_at)
    audit_record(actor=actor, action="partner.created", target=partner, ip=ip,
                 after={"name": name, "kind": kind, "contact_email": contact_email})
    return partner


EDITABLE_PARTNER_FIELDS = ("name", "kind", "contact_name", "contact_email")


@transaction.atomic
def partner_update(*, partner: PartnerOrganisation, actor, changed: list[str],
                   ip: str | None = None) -> PartnerOrganisation:
    """Save edits of a partner's name, kind or contact (`partner` holds the new values), audited with what they
    were before. Activation and members change through their own services."""
    require(actor, MANAGE_PARTNERS, to="manage partner organisations")
    fields = [name for name in changed if name in EDITABLE_PARTNER_FIELDS]
    if not fields:
        return partner
    before = PartnerOrganisation.objects.filter(pk=partner.pk).values(*fields).get()
    partner.save(update_fields=fields)
    audit_record(actor=actor, action="partner.updated", target=partner, before=before,
                 after={name: getattr(partner, name) for name in fields}, ip=ip)
    return partner


@transaction.atomic
def partner_set_active(*, partner: PartnerOrganisation, active: bool, actor, reason: str,
                       ip: str | None = None) -> PartnerOrganisation:
    """Deactivating stops new links for every member at once; links already issued die at their expiry."""
    require(actor, MANAGE_PARTNERS, to="manage partner organisations")
    reason = (reason or "").strip()
    if not reason:
        raise InvalidPartnerAction("Say why.", fields={"reason": ["Required."]})
    if PartnerOrganisation.objects.filter(pk=partner.pk, active=not active).update(active=active) != 1:
        raise InvalidPartnerAction(f"{partner.name} is already {'active' if active else 'inactive'}.")
    PartnerActivity.objects.create(partner=partner, active=active, at=timezone.now())
    partner.active = active
    audit_record(actor=actor, action="partner.activated" if active else "partner.deactivated", target=partner,
                 before=not active, after=active, reason=reason, ip=ip)
    return partner


@transaction.atomic
def partner_member_add(*, partner: PartnerOrganisation, user, actor, role: str = PartnerMember.Role.MEMBER,
                       ip: str | None = None) -> PartnerMember:
    require(actor, MANAGE_PARTNERS, to="manage partner organisations")
    return membership_start(partner=partner, user=user, role=role, actor=actor, action="partner.member_added", ip=ip)


def membership_start(*, partner: PartnerOrganisation, user, role: str, actor, action: str, ip: str | None = None,
                     **data) -> PartnerMember:
    """Make `user` a member (the caller has checked who may): staff adding one, or an invitation accepted."""
    if role not in PartnerMember.Role.values:
        raise InvalidPartnerAction(f"Unknown role {role!r}.", fields={"role": [str(PartnerMember.Role.values)]})
    existing = PartnerMember.objects.current().filter(user=user).select_related("partner").first()
    if existing is not None:
        raise InvalidPartnerAction(f"{user.get_username()} is already a member of {existing.partner.name}.",
                                   code="already_a_member")
    with duplicate_refused(InvalidPartnerAction(f"{user.get_username()} has just joined an organisation.",
                                                code="already_a_member")):
        member = PartnerMember.objects.create(partner=partner, user=user, role=role)
    audit_record(actor=actor, action=action, target=partner, ip=ip,
                 data={"user_id": user.pk, "username": user.get_username(), "role": role, **data})
    return member


@transaction.atomic
def partner_member_remove(*, member: PartnerMember, actor, ip: str | None = None) -> None:
    require(actor, MANAGE_PARTNERS, to="manage partner organisations")
    membership_end(member=member, actor=actor, ip=ip)


def membership_end(*, member: PartnerMember, actor, ip: str | None = None) -> None:
    """End a membership (kept, with when it ended: the history says who could download what, and when)."""
    partner, user = member.partner, member.user
    if PartnerMember.objects.filter(pk=member.pk, left_at__isnull=True).update(left_at=timezone.now()) != 1:
        raise InvalidPartnerAction(f"{user.get_username()} is no longer a member of {partner.name}.")
    audit_record(actor=actor, action="partner.member_removed", target=partner, ip=ip,
                 data={"user_id": user.pk, "username": user.get_username()})


@transaction.atomic
def partner_member_set_role(*, member: PartnerMember, role: str, actor, ip: str | None = None) -> PartnerMember:
    """Make a current member a partner admin, or a plain member again (staff, in the admin)."""
    require(actor, MANAGE_PARTNERS, to="manage partner organisations")
    if role not in PartnerMember.Role.values:
        raise InvalidPartnerAction(f"Unknown role {role!r}.", fields={"role": [str(PartnerMember.Role.values)]})
    before = PartnerMember.objects.filter(pk=member.pk).values_list("role", flat=True).get()
    if before == role:
        return member
    PartnerMember.objects.filter(pk=member.pk).update(role=role)
    member.role = role
    audit_record(actor=actor, action="partner.member_role_changed", target=member.partner, ip=ip, before=before,
                 after=role, data={"user_id": member.user_id, "username": member.user.get_username()})
    return member


# --------------------------------------------------------------------------- terms of use
@transaction.atomic
def terms_publish(*, version: str, text: str, actor, published_at: datetime | None = None,
                  ip: str | None = None) -> TermsVersion:
    """A new version in force from `published_at` (default now): members must accept it before any new link."""
    require(actor, PUBLISH_TERMS, to="publish terms of use")
    version, text = (version or "").strip(), (text or "").strip()
    if not version or not text:
        raise InvalidPartnerAction("Terms need a version and a text.")
    if TermsVersion.objects.filter(version=version).exists():
        raise InvalidPartnerAction(f"Terms version {version} exists already; publish a new version.")
    terms = TermsVersion.objects.create(version=version, text=text, published_at=published_at or timezone.now(),
                                        created_by=actor)
    audit_record(actor=actor, action="terms.published", target=terms, ip=ip,
                 data={"version": version, "published_at": terms.published_at.isoformat()})
    return terms


@transaction.atomic
def terms_accept(*, user, terms: TermsVersion, ip: str | None = None) -> TermsAcceptance:
    """Record that `user` accepted `terms`; accepting again changes nothing."""
    if terms.published_at > timezone.now():
        raise InvalidPartnerAction(f"Terms {terms.version} are not published yet.")
    acceptance, created = TermsAcceptance.objects.get_or_create(terms=terms, user=user, defaults={"ip": ip})
    if created:
        audit_record(actor=user, action="terms.accepted", target=terms, ip=ip, data={"version": terms.version})
    return acceptance
