"""Writes about access: partners' requests for a size, grants given by policy staff, revocations. All audited.

A grant only ever opens a size at the `partners` stage; what it opens is decided by releases/access.py.
"""

from collections.abc import Mapping
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from config.errors import duplicate_refused
from registry.errors import ModelSizeNotFound
from registry.models import ModelSize
from releases.access import questions, renewals
from releases.access import rules as access
from releases.access.errors import (
    AccessRequestNotPending,
    GrantAlreadyHeld,
    GrantAlreadyRevoked,
    InvalidPartnerAction,
    required_text,
)
from releases.audit.chain import audit_record
from releases.models import AccessGrant, AccessRequest, PartnerMember, PartnerOrganisation
from releases.outbox.delivery import webhooks_enqueue
from releases.roles import GRANT_ACCESS, REVOKE_ACCESS, require
from releases.stage_names import Stage

Status = AccessRequest.Status


def _grant_snapshot(grant: AccessGrant) -> dict:
    return {
        "partner": grant.partner.name, "model": grant.model_size.slug, "starts_at": grant.starts_at.isoformat(),
        "expires_at": grant.expires_at.isoformat(), "quota_links": grant.quota_links,
        "quota_period_s": grant.quota_period_s,
    }


def _access_request_webhook(event: str, request: AccessRequest, status: str) -> None:
    webhooks_enqueue(event=event, payload={"request_id": request.pk, "partner": request.partner.name,
                                           "model": request.model_size.slug, "status": status})


# --------------------------------------------------------------------------- what a member sees
def member_partner(user) -> PartnerOrganisation | None:
    """The organisation `user` is a current member of, if any."""
    membership = access.membership_of(user)
    return membership.partner if membership else None


def grants_of(user) -> list[AccessGrant]:
    """The grants of the caller's organisation, newest first (none for someone in no organisation)."""
    partner = member_partner(user)
    if partner is None:
        return []
    return list(AccessGrant.objects.filter(partner=partner).select_related("partner", "model_size")
                .order_by("-created_at", "-id"))


def access_requests_of(user) -> list[AccessRequest]:
    partner = member_partner(user)
    if partner is None:
        return []
    return list(AccessRequest.objects.filter(partner=partner).select_related("partner", "model_size", "requested_by"))


# --------------------------------------------------------------------------- requests
@transaction.atomic
def access_request_create(*, user, size: ModelSize, purpose: str, answers: Mapping | None = None,
                          ip: str | None = None) -> AccessRequest:
    """A member of an active partner asks for a size (one not internal) with a purpose and the answers to its
    access questions (releases/access/questions.py)."""
    if size.stage == Stage.INTERNAL:
        raise ModelSizeNotFound(f"No model size {size.slug!r}.")
    membership = access.membership_of(user)
    if membership is None or not membership.partner.active:
        raise InvalidPartnerAction("Only members of an active partner organisation may request access.",
                                   code="not_a_partner")
    purpose = required_text(purpose, "purpose", "Say what the size is needed for.")
    if AccessRequest.objects.filter(partner=membership.partner, model_size=size, status=Status.PENDING).exists():
        raise AccessRequestNotPending(f"{membership.partner.name} already has a pending request for {size.slug}.")
    held = AccessGrant.objects.active(at=timezone.now()).filter(partner=membership.partner, model_size=size).first()
    if held is not None:
        raise GrantAlreadyHeld(f"{membership.partner.name} already holds grant #{held.pk} for {size.slug}, until "
                               f"{held.expires_at.isoformat()}.")
    recorded = questions.answers_checked(size, answers or {})
    with duplicate_refused(AccessRequestNotPending(f"{membership.partner.name} already has a pending request for "
                                                   f"{size.slug}.")):
        request = AccessRequest.objects.create(partner=membership.partner, model_size=size, requested_by=user,
                                               purpose=purpose, answers=recorded)
    audit_record(actor=user, action="access_request.created", target=request, reason=purpose, ip=ip,
                 data={"partner": membership.partner.name, "model": size.slug, "answers": recorded})
    _access_request_webhook("access_request.created", request, Status.PENDING)
    return request


@transaction.atomic
def access_request_withdraw(*, request: AccessRequest, user, ip: str | None = None) -> AccessRequest:
    """A member of the requesting organisation takes back a pending request (theirs or a colleague's)."""
    request = AccessRequest.objects.select_for_update().select_related("partner", "model_size").get(pk=request.pk)
    if not PartnerMember.objects.current().filter(user=user, partner=request.partner_id).exists():
        raise InvalidPartnerAction("Only members of the requesting organisation may withdraw its request.",
                                   code="not_a_partner")
    if request.status != Status.PENDING:
        raise AccessRequestNotPending(f"Access request #{request.pk} is {request.status}; only pending ones are "
                                      "withdrawn.")
    AccessRequest.objects.filter(pk=request.pk).update(status=Status.WITHDRAWN, decided_at=timezone.now())
    audit_record(actor=user, action="access_request.withdrawn", target=request, before=Status.PENDING,
                 after=Status.WITHDRAWN, ip=ip)
    _access_request_webhook("access_request.withdrawn", request, Status.WITHDRAWN)
    return request


@transaction.atomic
def access_request_grant(
    *, request: AccessRequest, actor, expires_at: datetime, starts_at: datetime | None = None,
    quota_links: int | None = None, quota_period_s: int | None = None, reason: str = "", ip: str | None = None,
) -> AccessGrant:
    require(actor, GRANT_ACCESS, to="grant access")
    request = AccessRequest.objects.select_for_update().select_related("partner", "model_size").get(pk=request.pk)
    if request.status != Status.PENDING:
        raise AccessRequestNotPending(f"Access request #{request.pk} is {request.status}.")
    if request.renewal_of_id is not None:
        # A renewal extends the grant it names: same grant, same quota, a later end.
        return renewals.grant_extend(grant=request.renewal_of, actor=actor, expires_at=expires_at,
                            reason=(reason or "").strip() or f"Renewal request #{request.pk}: {request.purpose}", ip=ip)
    grant = grant_create(partner=request.partner, size=request.model_size, purpose=request.purpose, actor=actor,
                         starts_at=starts_at, expires_at=expires_at, quota_links=quota_links,
                         quota_period_s=quota_period_s, ip=ip)
    AccessRequest.objects.filter(pk=request.pk, status=Status.PENDING).update(
        status=Status.GRANTED, decided_by=actor, decided_at=timezone.now(), decision_reason=(reason or "").strip(),
        grant=grant,
    )
    audit_record(actor=actor, action="access_request.granted", target=request, before=Status.PENDING,
                 after=Status.GRANTED, reason=reason, ip=ip, data={"grant_id": grant.pk})
    _access_request_webhook("access_request.granted", request, Status.GRANTED)
    return grant


@transaction.atomic
def access_request_refuse(*, request: AccessRequest, actor, reason: str, ip: str | None = None) -> AccessRequest:
    require(actor, GRANT_ACCESS, to="grant access")
    reason = required_text(reason, "reason", "A refusal needs a reason; the partner sees it.")
    if AccessRequest.objects.filter(pk=request.pk, status=Status.PENDING).update(
        status=Status.REFUSED, decided_by=actor, decided_at=timezone.now(), decision_reason=reason
    ) != 1:
        raise AccessRequestNotPending(f"Access request #{request.pk} is no longer pending.")
    request.refresh_from_db()
    audit_record(actor=actor, action="access_request.refused", target=request, before=Status.PENDING,
                 after=Status.REFUSED, reason=reason, ip=ip)
    _access_request_webhook("access_request.refused", request, Status.REFUSED)
    return request


# --------------------------------------------------------------------------- grants
@transaction.atomic
def grant_create(
    *, partner: PartnerOrganisation, size: ModelSize, purpose: str, actor, expires_at: datetime,
    starts_at: datetime | None = None, quota_links: int | None = None, quota_period_s: int | None = None,
    ip: str | None = None,
) -> AccessGrant:
    """Grant a partner a size. It opens nothing while the size is internal or withdrawn (releases/access.py)."""
    require(actor, GRANT_ACCESS, to="grant access")
    purpose = required_text(purpose, "purpose", "A grant needs a purpose.")
    starts_at = starts_at or timezone.now()
    if expires_at <= starts_at:
        raise InvalidPartnerAction("A grant must expire after it starts.", fields={"expires_at": ["Too early."]})
    if (quota_links is None) != (quota_period_s is None) or (quota_links is not None and (
            quota_links < 1 or quota_period_s < 1)):
        raise InvalidPartnerAction("A quota needs both a number of links (at least 1) and a period in seconds.",
                                   fields={"quota_links": ["Give both or neither."]})
    grant = AccessGrant.objects.create(partner=partner, model_size=size, purpose=purpose, granted_by=actor,
                                       starts_at=starts_at, expires_at=expires_at, quota_links=quota_links,
                                       quota_period_s=quota_period_s)
    audit_record(actor=actor, action="grant.created", target=grant, after=_grant_snapshot(grant), reason=purpose,
                 ip=ip, data={"partner_id": partner.pk, "stage_at_grant": size.stage})
    return grant


@transaction.atomic
def grant_revoke(*, grant: AccessGrant, actor, reason: str, ip: str | None = None) -> AccessGrant:
    """Revoke at once: no new links from the moment this commits; links already issued die at their expiry."""
    require(actor, REVOKE_ACCESS, to="revoke grants")
    reason = required_text(reason, "reason", "A revocation needs a reason; the partner sees it.")
    now = timezone.now()
    # Conditional UPDATE: a second or concurrent revocation changes nothing and is told so. The row lock it
    # takes makes a link issued concurrently wait (releases/links.py) and then see the revocation.
    if AccessGrant.objects.filter(pk=grant.pk, revoked_at__isnull=True).update(
        revoked_at=now, revoked_by=actor, revoke_reason=reason
    ) != 1:
        raise GrantAlreadyRevoked(f"Grant #{grant.pk} is already revoked.")
    grant.refresh_from_db()
    audit_record(actor=actor, action="grant.revoked", target=grant, before="active", after="revoked",
                 reason=reason, ip=ip, data={"partner_id": grant.partner_id, "model": grant.model_size.slug})
    return grant
