"""Writes about partners: organisations, their members, the terms of use and their acceptance, API tokens.

Each function is one atomic step that writes its audit row. Tokens are knox tokens: stored hashed, the key
is returned once and never recorded (audit rows carry only knox's public token_key prefix).
"""

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone
from knox.models import AuthToken

from releases.access import is_staff
from releases.audit import audit_record
from releases.errors import InvalidPartnerAction, NotPolicyStaff
from releases.models import PartnerMember, PartnerOrganisation, TermsAcceptance, TermsVersion, TokenLabel
from releases.services import require_policy_staff

TOKEN_MAX_DAYS = 365


# --------------------------------------------------------------------------- organisations and members
@transaction.atomic
def partner_create(*, name: str, kind: str, actor, contact_name: str = "", contact_email: str = "",
                   ip: str | None = None) -> PartnerOrganisation:
    require_policy_staff(actor)
    name = (name or "").strip()
    if not name:
        raise InvalidPartnerAction("A partner organisation needs a name.", fields={"name": ["Required."]})
    if kind not in PartnerOrganisation.Kind.values:
        raise InvalidPartnerAction(f"Unknown kind {kind!r}.", fields={"kind": [str(PartnerOrganisation.Kind.values)]})
    partner = PartnerOrganisation.objects.create(name=name, kind=kind, contact_name=contact_name,
                                                 contact_email=contact_email)
    audit_record(actor=actor, action="partner.created", target=partner, ip=ip,
                 after={"name": name, "kind": kind, "contact_email": contact_email})
    return partner


@transaction.atomic
def partner_set_active(*, partner: PartnerOrganisation, active: bool, actor, reason: str,
                       ip: str | None = None) -> PartnerOrganisation:
    """Deactivating stops new links for every member at once; links already issued die at their expiry."""
    require_policy_staff(actor)
    reason = (reason or "").strip()
    if not reason:
        raise InvalidPartnerAction("Say why.", fields={"reason": ["Required."]})
    if PartnerOrganisation.objects.filter(pk=partner.pk, active=not active).update(active=active) != 1:
        raise InvalidPartnerAction(f"{partner.name} is already {'active' if active else 'inactive'}.")
    partner.active = active
    audit_record(actor=actor, action="partner.activated" if active else "partner.deactivated", target=partner,
                 before=not active, after=active, reason=reason, ip=ip)
    return partner


@transaction.atomic
def partner_member_add(*, partner: PartnerOrganisation, user, actor, ip: str | None = None) -> PartnerMember:
    require_policy_staff(actor)
    existing = PartnerMember.objects.filter(user=user).select_related("partner").first()
    if existing is not None:
        raise InvalidPartnerAction(f"{user.get_username()} is already a member of {existing.partner.name}.")
    member = PartnerMember.objects.create(partner=partner, user=user)
    audit_record(actor=actor, action="partner.member_added", target=partner, ip=ip,
                 data={"user_id": user.pk, "username": user.get_username()})
    return member


@transaction.atomic
def partner_member_remove(*, member: PartnerMember, actor, ip: str | None = None) -> None:
    require_policy_staff(actor)
    partner, user = member.partner, member.user
    member.delete()
    audit_record(actor=actor, action="partner.member_removed", target=partner, ip=ip,
                 data={"user_id": user.pk, "username": user.get_username()})


# --------------------------------------------------------------------------- terms of use
@transaction.atomic
def terms_publish(*, version: str, text: str, actor, published_at: datetime | None = None,
                  ip: str | None = None) -> TermsVersion:
    """A new version in force from `published_at` (default now): members must accept it before any new link."""
    require_policy_staff(actor)
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


# --------------------------------------------------------------------------- API tokens
@transaction.atomic
def token_create(*, user, name: str, expires_days: int | None, actor, ip: str | None = None) -> tuple[AuthToken, str]:
    """A named token for `user`, created by the user or by staff (actor None: an operator's command).

    Returns the token and its key; only a hash is stored, so the key can be shown this once only.
    expires_days 0 means no expiry (operators only); None means the default lifetime (REST_KNOX TOKEN_TTL).
    """
    if actor is not None and actor.pk != user.pk and not is_staff(actor):
        raise NotPolicyStaff("Only staff may create tokens for other users.")
    if expires_days is not None and not 0 <= expires_days <= TOKEN_MAX_DAYS:
        raise InvalidPartnerAction(f"A token lasts 1 to {TOKEN_MAX_DAYS} days.", fields={"expires_days": ["Range."]})
    if expires_days == 0 and actor is not None:
        raise InvalidPartnerAction("Tokens created in the portal or admin must expire.")
    name = (name or "").strip()[:100] or f"{user.get_username()} token"
    if expires_days is None:
        token, key = AuthToken.objects.create(user=user)
    else:
        token, key = AuthToken.objects.create(user=user, expiry=timedelta(days=expires_days) if expires_days else None)
    TokenLabel.objects.create(token=token, name=name)
    audit_record(actor=actor, action="token.created", target=user, ip=ip,
                 data={"token_key": token.token_key, "name": name,
                       "expiry": token.expiry.isoformat() if token.expiry else None})
    return token, key


def tokens_delete_expired(*, now=None) -> int:
    """Delete API tokens past their expiry (they authenticate nothing already); the number deleted."""
    now = now or timezone.now()
    deleted, _by_model = AuthToken.objects.filter(expiry__lt=now).delete()
    return deleted


@transaction.atomic
def token_revoke(*, token: AuthToken, actor, ip: str | None = None) -> None:
    """Delete the token: the next request that sends it is refused (401)."""
    if actor is not None and actor.pk != token.user_id and not is_staff(actor):
        raise NotPolicyStaff("Only staff may revoke other users' tokens.")
    label = TokenLabel.objects.filter(token=token).values_list("name", flat=True).first() or ""
    user, token_key = token.user, token.token_key
    token.delete()
    audit_record(actor=actor, action="token.revoked", target=user, ip=ip,
                 data={"token_key": token_key, "name": label})
