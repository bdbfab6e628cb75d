"""A partner organisation serving itself: its partner admins invite people (by email address, with a link used
once), remove members, revoke members' API tokens and see the organisation's grants, requests and usage.

Who may: a current member whose role is `admin`, for their own organisation only, and only while it is active
(an inactive organisation waits for policy staff). Policy staff do the same in the admin (partners.py); every
act is audited under the partner admin's name.
"""

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone
from knox.models import AuthToken

from config.errors import Conflict, NotFound, duplicate_refused
from releases.access import accounts, partners, tokens
from releases.access.errors import InvalidPartnerAction
from releases.access.models import PartnerInvitation, PartnerMember, PartnerOrganisation, TokenLabel
from releases.audit.chain import audit_record
from releases.outbox.delivery import email_enqueue
from releases.roles import NotPermitted

USERNAME_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,150}")
Role = PartnerMember.Role
State = PartnerInvitation.State
INVITATION_DAYS = 14
INVITATIONS_PER_DAY = 50  # per organisation: invitation emails carry its name, so they are not a free mailer
EMAIL_MAX_CHARS = 254  # the column's width; validate_email alone allows 320


class NotPartnerAdmin(NotPermitted):
    code = "not_partner_admin"


class InvitationNotFound(NotFound):
    code = "invitation_not_found"


class InvitationNotPending(Conflict):
    code = "invitation_not_pending"


# --------------------------------------------------------------------------- who may
def admin_membership(user) -> PartnerMember:
    """The caller's membership if they are a partner admin of an active organisation; else NotPartnerAdmin."""
    membership = (PartnerMember.objects.current().select_related("partner")
                  .filter(user=user, role=Role.ADMIN).first() if user.is_authenticated else None)
    if membership is None:
        raise NotPartnerAdmin("Only a partner admin of the organisation may do this; ask one of yours, or policy staff.")
    if not membership.partner.active:
        raise NotPartnerAdmin(f"{membership.partner.name} is inactive; policy staff manage it until it is active.")
    return membership


def is_partner_admin(user) -> bool:
    return user.is_authenticated and PartnerMember.objects.current().filter(
        user=user, role=Role.ADMIN, partner__active=True).exists()


def _own_member(actor, member: PartnerMember) -> PartnerOrganisation:
    partner = admin_membership(actor).partner
    if member.partner_id != partner.pk or member.left_at is not None:
        raise NotPartnerAdmin(f"{member.user.get_username()} is not a current member of {partner.name}.")
    return partner


# --------------------------------------------------------------------------- what a partner admin sees
@dataclass
class MemberRow:
    member: PartnerMember
    tokens: list[AuthToken]


@dataclass
class Organisation:
    partner: PartnerOrganisation
    members: list[MemberRow]
    invitations: list[PartnerInvitation]  # pending ones


def _download_tokens(user_ids: list[int]):
    """The tokens a partner admin sees and may revoke: download tokens. A member's governance token (staff who
    joined an organisation) is theirs and policy staff's to manage, not the organisation's."""
    return tokens.live_tokens().filter(user__in=user_ids, label__scope=TokenLabel.Scope.DOWNLOAD)


def organisation_of(actor) -> Organisation:
    partner = admin_membership(actor).partner
    members = list(PartnerMember.objects.current().filter(partner=partner).select_related("user"))
    held: dict[int, list[AuthToken]] = {member.user_id: [] for member in members}
    for token in _download_tokens([member.user_id for member in members]):  # one query for every member
        held[token.user_id].append(token)
    return Organisation(
        partner=partner,
        members=[MemberRow(member, held[member.user_id]) for member in members],
        invitations=list(partner.invitations.filter(accepted_at__isnull=True, cancelled_at__isnull=True,
                                                    expires_at__gt=timezone.now()).select_related("invited_by")))


# --------------------------------------------------------------------------- invitations
def invitation_digest(secret: str) -> str:
    """What the table keeps of a link's secret; the services look invitations up by it."""
    return hashlib.sha256((secret or "").encode()).hexdigest()


def invitation_url(secret: str) -> str:
    return f"{settings.SITE_URL}/portal/invitations/{secret}/"


@transaction.atomic
def invitation_create(*, actor, email: str, role: str = Role.MEMBER, ip: str | None = None) -> PartnerInvitation:
    """Invite `email` to the actor's organisation. The link goes to that address only, by email through the
    outbox: nobody else is shown it, so following it proves the invitee reads that mailbox. Only the secret's
    digest is stored."""
    partner = PartnerOrganisation.objects.select_for_update().get(pk=admin_membership(actor).partner_id)
    email = (email or "").strip()
    try:
        if len(email) > EMAIL_MAX_CHARS:
            raise ValidationError("too long")
        validate_email(email)
    except ValidationError:
        raise InvalidPartnerAction(f"{email[:80]!r} is not an email address.",
                                   fields={"email": ["Not an address."]}) from None
    sent_today = partner.invitations.filter(created_at__gt=timezone.now() - timedelta(days=1)).count()
    if sent_today >= INVITATIONS_PER_DAY:
        raise InvitationNotPending(f"{partner.name} sent {sent_today} invitations in the last day, the most it may; "
                                   "try again tomorrow, or ask policy staff to add members.", code="invitation_limit")
    if role not in Role.values:
        raise InvalidPartnerAction(f"Unknown role {role!r}.", fields={"role": [str(Role.values)]})
    if PartnerMember.objects.current().filter(partner=partner, user__email__iexact=email).exists():
        raise InvalidPartnerAction(f"Someone with {email} is a member of {partner.name} already.",
                                   code="already_a_member")
    pending = partner.invitations.filter(email__iexact=email, accepted_at__isnull=True, cancelled_at__isnull=True,
                                         expires_at__gt=timezone.now()).first()
    if pending is not None:
        raise InvitationNotPending(f"{email} has an invitation already (#{pending.pk}, until "
                                   f"{pending.expires_at:%Y-%m-%d}); cancel it to send a new one.")
    secret = secrets.token_urlsafe(32)
    invitation = PartnerInvitation.objects.create(
        partner=partner, email=email, role=role, invited_by=actor, secret_sha256=invitation_digest(secret),
        expires_at=timezone.now() + timedelta(days=INVITATION_DAYS))
    audit_record(actor=actor, action="partner.member_invited", target=partner, ip=ip,
                 data={"invitation_id": invitation.pk, "email": email, "role": role,
                       "expires_at": invitation.expires_at.isoformat()})
    inviter = actor.get_full_name() or actor.get_username()
    email_enqueue(event="partner.member_invited", subject=f"[Stagegate] {inviter} invites you to {partner.name}",
                  recipients=[email], body="\n".join([
                      f"{inviter} invites you to join {partner.name} on Stagegate as a "
                      f"{invitation.get_role_display().lower()}.", "",
                      f"Accept (the link works once, until {invitation.expires_at:%Y-%m-%d}):",
                      invitation_url(secret), "",
                      "If you did not expect this, ignore this message."]), confidential=True)
    return invitation


@transaction.atomic
def invitation_cancel(*, invitation: PartnerInvitation, actor, ip: str | None = None) -> PartnerInvitation:
    partner = admin_membership(actor).partner
    invitation = PartnerInvitation.objects.select_for_update().get(pk=invitation.pk)
    if invitation.partner_id != partner.pk:
        raise InvitationNotFound(f"No invitation #{invitation.pk} of {partner.name}.")
    if invitation.state() != State.PENDING:
        raise InvitationNotPending(f"Invitation #{invitation.pk} is {invitation.state()}; only pending ones are "
                                   "cancelled.")
    invitation.cancelled_at = timezone.now()
    invitation.save(update_fields=["cancelled_at"])
    audit_record(actor=actor, action="partner.invitation_cancelled", target=partner, ip=ip,
                 data={"invitation_id": invitation.pk, "email": invitation.email})
    return invitation


def invitation_by_digest(digest: str, *, lock: bool = False) -> PartnerInvitation:
    """The invitation a link opens (by its secret's digest), whatever its state; InvitationNotFound otherwise."""
    invitations = PartnerInvitation.objects.select_related("partner", "invited_by")
    if lock:
        invitations = invitations.select_for_update(of=("self",))
    invitation = invitations.filter(secret_sha256=digest).first() if digest else None
    if invitation is None:
        raise InvitationNotFound("This invitation link is not valid; ask your partner admin for a new one.")
    return invitation


def _joinable(digest: str) -> PartnerInvitation:
    invitation = invitation_by_digest(digest, lock=True)
    state = invitation.state()
    if state != State.PENDING:
        raise InvitationNotPending(f"This invitation is {state}; ask your partner admin for a new one.")
    if not invitation.partner.active:
        raise InvitationNotPending(f"{invitation.partner.name} is inactive; its invitations wait for policy staff.")
    # Sent on the inviter's authority: it ends with their being a partner admin there (removed, or made a plain
    # member), so nobody removed can come back through links they sent.
    if not PartnerMember.objects.current().filter(partner=invitation.partner, user=invitation.invited_by_id,
                                                  role=Role.ADMIN).exists():
        raise InvitationNotPending(f"The partner admin who sent this invitation no longer is one at "
                                   f"{invitation.partner.name}; ask a current one for a new invitation.")
    return invitation


@transaction.atomic
def invitation_accept(*, digest: str, user, ip: str | None = None) -> PartnerMember:
    """`user` joins the organisation with the invitation's role. The account's email address must be the one
    invited: a forwarded or leaked link does not let a different existing account in."""
    invitation = _joinable(digest)
    if (user.email or "").strip().lower() != invitation.email.lower():
        raise InvalidPartnerAction(f"This invitation is for {invitation.email}, and your account's address is "
                                   f"{user.email or 'not set'}; sign in with the account of that address, or "
                                   "create one here.", code="invitation_for_another_address")
    member = partners.membership_start(partner=invitation.partner, user=user, role=invitation.role, actor=user,
                                       action="partner.member_joined", ip=ip, invitation_id=invitation.pk,
                                       invited_by=invitation.invited_by.get_username())
    invitation.accepted_by, invitation.accepted_at = user, timezone.now()
    invitation.save(update_fields=["accepted_by", "accepted_at"])
    return member


@transaction.atomic
def invitation_accept_new_account(*, digest: str, username: str, password: str, ip: str | None = None):
    """Create an account for the invited address and join with it, in one step; returns the new user."""
    invitation = _joinable(digest)
    User = get_user_model()
    if User.objects.filter(email__iexact=invitation.email).exists():
        raise InvalidPartnerAction(f"An account with {invitation.email} exists already: sign in with it and follow "
                                   "the link again.", code="account_exists")
    username = (username or "").strip()
    if not username:
        raise InvalidPartnerAction("Choose a username.", fields={"username": ["Required."]})
    # Plain ASCII, unique whatever the case: no "Alice" or Cyrillic "аlice" passing for staff in the audit trail.
    if not USERNAME_PATTERN.fullmatch(username):
        raise InvalidPartnerAction("A username is 1 to 150 of the letters a-z and A-Z, digits and . _ -",
                                   fields={"username": ["Letters, digits and . _ - only."]})
    if User.objects.filter(username__iexact=username).exists():
        raise InvalidPartnerAction(f"The username {username!r} is taken.", fields={"username": ["Taken."]})
    candidate = User(username=username, email=invitation.email)
    try:
        candidate.full_clean(exclude=["password"])
    except ValidationError as problem:
        raise InvalidPartnerAction(" ".join(problem.messages), fields=problem.message_dict) from None
    try:
        validate_password(password or "", user=candidate)
    except ValidationError as problem:
        raise InvalidPartnerAction(" ".join(problem.messages), fields={"password": problem.messages}) from None
    with duplicate_refused(InvalidPartnerAction(f"The username {username!r} is taken.",
                                                fields={"username": ["Taken."]})):
        user = User.objects.create_user(username=username, email=invitation.email, password=password)
    accounts.account_change_record(user=user, before=None, actor=user, ip=ip)
    invitation_accept(digest=digest, user=user, ip=ip)
    return user


# --------------------------------------------------------------------------- members and their tokens
@transaction.atomic
def member_remove(*, member: PartnerMember, actor, ip: str | None = None) -> list[str]:
    """End `member`'s membership and revoke their download tokens (made for the organisation's work); returns
    the revoked tokens' key prefixes. A partner admin does not remove themself: another admin or policy staff do."""
    _own_member(actor, member)
    if member.user_id == actor.pk:
        raise InvalidPartnerAction("You cannot remove yourself; ask another partner admin or policy staff.",
                                   code="cannot_remove_self")
    partners.membership_end(member=member, actor=actor, ip=ip)
    return member_tokens_revoke(member=member, actor=actor, ip=ip, checked=True)


@transaction.atomic
def member_tokens_revoke(*, member: PartnerMember, actor, ip: str | None = None, checked: bool = False,
                         token_key: str | None = None) -> list[str]:
    """Revoke a member's download tokens (one, with `token_key`), each audited; returns their key prefixes."""
    if not checked:
        _own_member(actor, member)
    revoked = []
    owned = _download_tokens([member.user_id])
    if token_key is not None:
        owned = owned.filter(token_key=token_key)
        if not owned.exists():
            raise NotFound(f"{member.user.get_username()} has no token {token_key}.", code="token_not_found")
    for token in owned:
        tokens.token_delete(token=token, actor=actor, ip=ip, data={"by_partner_admin": True})
        revoked.append(token.token_key)
    return revoked
