"""Grants that end: notices to the organisation 30, 7 and 1 days before (email and webhook, through the outbox),
renewal requests by its members, and extensions by policy staff with a reason. All audited.

An extension changes a grant's `expires_at` and nothing else, so the links, quota and terms it already covers
stay as they are; a grant that has ended is renewed the same way (its expiry moves past now).
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config.errors import duplicate_refused
from releases.access.errors import AccessRequestNotPending, InvalidPartnerAction, required_text
from releases.access.models import AccessGrant, AccessRequest, GrantExpiryNotice, PartnerMember
from releases.audit.chain import audit_record
from releases.outbox.delivery import email_enqueue, webhooks_enqueue
from releases.roles import GRANT_ACCESS, require

NOTICE_DAYS = (30, 7, 1)
# A member may ask to renew a grant from this long before it ends (or once it has ended).
RENEWAL_WINDOW = timedelta(days=max(NOTICE_DAYS))


def renewable(grant: AccessGrant, *, now: datetime | None = None) -> bool:
    """Whether its organisation may ask to renew `grant`: not revoked, and in its last RENEWAL_WINDOW or ended."""
    return grant.revoked_at is None and grant.expires_at - (now or timezone.now()) <= RENEWAL_WINDOW


Status = AccessRequest.Status


def _due_threshold(grant: AccessGrant, now: datetime) -> int | None:
    """The smallest notice threshold the time left is within (None: more than 30 days left)."""
    left = grant.expires_at - now
    within = [days for days in NOTICE_DAYS if left <= timedelta(days=days)]
    return min(within) if within else None


@transaction.atomic
def grant_expiry_notices_send(*, now: datetime | None = None) -> list[int]:
    """Tell each organisation whose grant ends within 30, 7 or 1 days, once per threshold and expiry; a grant
    first seen with 5 days left gets the 7-day notice only. Returns the ids of the grants noticed."""
    now = now or timezone.now()
    noticed = []
    grants = (AccessGrant.objects.active(at=now).filter(expires_at__lte=now + RENEWAL_WINDOW, partner__active=True)
              .select_related("partner", "model_size"))
    for grant in grants:
        days = _due_threshold(grant, now)
        if days is None or GrantExpiryNotice.objects.filter(grant=grant, expires_at=grant.expires_at,
                                                            days_before__lte=days).exists():
            continue
        GrantExpiryNotice.objects.bulk_create(
            [GrantExpiryNotice(grant=grant, days_before=d, expires_at=grant.expires_at, sent_at=now)
             for d in NOTICE_DAYS if d >= days], ignore_conflicts=True)
        _notify(grant, days_left=max((grant.expires_at - now).days, 0))
        noticed.append(grant.pk)
    return noticed


def _notify(grant: AccessGrant, *, days_left: int) -> None:
    recipients = sorted(set(
        PartnerMember.objects.current().filter(partner=grant.partner, user__is_active=True).exclude(user__email="")
        .values_list("user__email", flat=True)) | ({grant.partner.contact_email} - {""}))
    ends = grant.expires_at.strftime("%Y-%m-%d %H:%M UTC")
    if recipients:
        email_enqueue(
            event="grant.expiring", recipients=recipients,
            subject=f"[Stagegate] Your grant for {grant.model_size.slug} ends {ends}",
            body="\n".join([
                f"{grant.partner.name}'s grant #{grant.pk} for {grant.model_size.slug} ends {ends} "
                f"(in {days_left} day{'s' if days_left != 1 else ''}). No links are issued after that.",
                "", f"To ask for more time, request a renewal in the partner portal: {settings.SITE_URL}/portal/",
            ]))
    webhooks_enqueue(event="grant.expiring", payload={
        "event": "grant.expiring", "grant_id": grant.pk, "partner": grant.partner.name,
        "model": grant.model_size.slug, "expires_at": grant.expires_at.isoformat(), "days_left": days_left})


@transaction.atomic
def grant_renewal_request(*, user, grant: AccessGrant, purpose: str, ip: str | None = None) -> AccessRequest:
    """A member asks for more time on their organisation's grant, within 30 days of its end or after it."""
    if not PartnerMember.objects.current().filter(user=user, partner=grant.partner_id).exists():
        raise InvalidPartnerAction("Only members of the grant's organisation may ask to renew it.",
                                   code="not_a_partner")
    if grant.revoked_at is not None:
        raise InvalidPartnerAction("A revoked grant is not renewed; request access again.", code="grant_revoked")
    if not renewable(grant):
        raise InvalidPartnerAction(f"Grant #{grant.pk} runs until {grant.expires_at:%Y-%m-%d}; ask for a renewal in "
                                   f"its last {RENEWAL_WINDOW.days} days.", code="renewal_too_early")
    waiting = AccessRequestNotPending(f"A renewal of grant #{grant.pk} is already waiting for policy staff.")
    if AccessRequest.objects.filter(renewal_of=grant, status=Status.PENDING).exists():
        raise waiting
    purpose = required_text(purpose, "purpose", "Say why the organisation needs more time.")
    with duplicate_refused(waiting):
        request = AccessRequest.objects.create(partner=grant.partner, model_size=grant.model_size,
                                               requested_by=user, purpose=purpose, renewal_of=grant)
    audit_record(actor=user, action="access_request.renewal_requested", target=request, reason=purpose, ip=ip,
                 data={"grant_id": grant.pk, "expires_at": grant.expires_at.isoformat()})
    return request


@transaction.atomic
def grant_extend(*, grant: AccessGrant, actor, expires_at: datetime, reason: str,
                 ip: str | None = None) -> AccessGrant:
    """Move a grant's end later (it must end in the future), with a reason; a pending renewal request for it
    is granted by the same act."""
    require(actor, GRANT_ACCESS, to="extend grants")
    reason = (reason or "").strip()
    if not reason:
        raise InvalidPartnerAction("Say why the grant is extended.", fields={"reason": ["Required."]})
    grant = AccessGrant.objects.select_for_update().get(pk=grant.pk)
    if grant.revoked_at is not None:
        raise InvalidPartnerAction("A revoked grant is not extended.", code="grant_revoked")
    if expires_at <= max(grant.expires_at, timezone.now()):
        raise InvalidPartnerAction("The new end must be later than the current one, and in the future.",
                                   fields={"expires_at": ["Later than now and than the current end."]})
    before = grant.expires_at
    AccessGrant.objects.filter(pk=grant.pk).update(expires_at=expires_at)
    grant.expires_at = expires_at
    now = timezone.now()
    AccessRequest.objects.filter(renewal_of=grant, status=Status.PENDING).update(
        status=Status.GRANTED, decided_by=actor, decided_at=now, decision_reason=reason)
    audit_record(actor=actor, action="grant.extended", target=grant, reason=reason, ip=ip,
                 before={"expires_at": before.isoformat()}, after={"expires_at": expires_at.isoformat()})
    webhooks_enqueue(event="grant.extended", payload={"grant_id": grant.pk, "partner": grant.partner.name,
                                                      "model": grant.model_size.slug,
                                                      "expires_at": expires_at.isoformat()})
    return grant
