"""The portal's pages for partner admins (their organisation: members, tokens, invitations, usage) and for
people following an invitation link. Thin views over releases/access/organisation.py."""

from datetime import timedelta

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST
from knox.models import AuthToken

from config.client_ip import client_ip
from config.errors import DomainError
from releases.access import grants, organisation, usage
from releases.access import rules as access
from releases.access.errors import InvalidPartnerAction
from releases.models import PartnerInvitation, PartnerMember
from web.portal.views import done

# The invitation a signed-out visitor opened, by its digest: they sign in and come back to /portal/invitation/
# without the secret ever travelling in a `next` parameter (which sign-in failures record).
INVITATION_SESSION_KEY = "portal_invitation"
USAGE_DAYS = 90


def _as_partner_admin(request: HttpRequest) -> PartnerMember | None:
    try:
        return organisation.admin_membership(request.user)
    except DomainError as error:
        messages.error(request, error.message)
        return None


def _done(request: HttpRequest, call, success: str) -> HttpResponse:
    return done(request, call, success, then="portal-organisation")


@login_required
def organisation_page(request: HttpRequest) -> HttpResponse:
    if _as_partner_admin(request) is None:
        return redirect("portal-home")
    mine = organisation.organisation_of(request.user)
    now = timezone.now()
    response = render(request, "portal/organisation.html", {
        "org": mine, "roles": PartnerMember.Role.choices, "now": now,
        "grants": [(grant, access.grant_state(grant, now=now)) for grant in grants.grants_of(request.user)],
        "requests": grants.access_requests_of(request.user),
        "usage": usage.usage_rows(partner=mine.partner, since=(now - timedelta(days=USAGE_DAYS)).date()),
        "usage_days": USAGE_DAYS,
    })
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def invitation_create(request: HttpRequest) -> HttpResponse:
    email = request.POST.get("email", "")
    return _done(request, lambda: organisation.invitation_create(
        actor=request.user, email=email, role=request.POST.get("role", "member"), ip=client_ip(request)),
        f"Invitation sent to {email.strip()}: the link goes to that address only, and works once.")


@login_required
@require_POST
def invitation_cancel(request: HttpRequest, invitation_id: int) -> HttpResponse:
    admin = _as_partner_admin(request)
    if admin is None:
        return redirect("portal-home")
    invitation = get_object_or_404(PartnerInvitation, pk=invitation_id, partner=admin.partner)
    return _done(request, lambda: organisation.invitation_cancel(invitation=invitation, actor=request.user,
                                                                 ip=client_ip(request)),
                 f"Invitation of {invitation.email} cancelled; its link no longer works.")


def _member(request: HttpRequest, member_id: int) -> PartnerMember:
    """A current member of the caller's own organisation, else 404 (others' members are not named)."""
    admin = organisation.admin_membership(request.user)
    return get_object_or_404(PartnerMember.objects.current().select_related("user", "partner"), pk=member_id,
                             partner=admin.partner)


def _confirm(request: HttpRequest, *, title: str, text: str, button: str) -> HttpResponse:
    return render(request, "portal/confirm.html", {"title": title, "text": text, "button": button,
                                                   "back": "portal-organisation"})


@login_required
def member_remove(request: HttpRequest, member_id: int) -> HttpResponse:
    """GET asks for confirmation; POST removes the member and revokes their tokens."""
    if _as_partner_admin(request) is None:
        return redirect("portal-home")
    member = _member(request, member_id)
    name = member.user.get_username()
    if request.method != "POST":
        return _confirm(request, title=f"Remove {name} from {member.partner.name}?",
                        text=f"{name} can no longer download what the organisation's grants open, and every API "
                             "token of theirs is revoked at once. Links already issued work until they expire.",
                        button=f"Remove {name}")
    return _done(request, lambda: organisation.member_remove(member=member, actor=request.user,
                                                             ip=client_ip(request)),
                 f"{name} removed; their tokens are revoked.")


@login_required
def member_token_revoke(request: HttpRequest, member_id: int, token_key: str) -> HttpResponse:
    if _as_partner_admin(request) is None:
        return redirect("portal-home")
    member = _member(request, member_id)
    token = get_object_or_404(AuthToken, user=member.user, token_key=token_key)
    name = member.user.get_username()
    if request.method != "POST":
        return _confirm(request, title=f"Revoke {name}'s token {token.token_key}?",
                        text="Anything that uses it stops working at once; links already issued keep working "
                             "until they expire.", button="Revoke this token")
    return _done(request, lambda: organisation.member_tokens_revoke(member=member, actor=request.user,
                                                                    token_key=token.token_key,
                                                                    ip=client_ip(request)),
                 f"{name}'s token {token.token_key} revoked.")


def invitation_page(request: HttpRequest, secret: str) -> HttpResponse:
    """The link from the invitation email: remembered (by digest) for this browser, then the invitation."""
    digest = organisation.invitation_digest(secret)
    request.session[INVITATION_SESSION_KEY] = digest
    return _invitation(request, digest)


def invitation_resume(request: HttpRequest) -> HttpResponse:
    """Back from signing in: the invitation this browser opened."""
    return _invitation(request, request.session.get(INVITATION_SESSION_KEY, ""))


def _invitation(request: HttpRequest, digest: str) -> HttpResponse:
    """Signed in, the invitee joins; otherwise they create an account for the invited address here, or sign in
    and come back."""
    try:
        invitation = organisation.invitation_by_digest(digest)
    except DomainError as error:
        return render(request, "portal/invitation.html", {"problem": error.message}, status=error.http_status)
    values: dict = {}
    if request.method == "POST":
        values = {"username": request.POST.get("username", "")}
        try:
            if request.user.is_authenticated:
                organisation.invitation_accept(digest=digest, user=request.user, ip=client_ip(request))
            else:
                if request.POST.get("password", "") != request.POST.get("password_again", ""):
                    raise InvalidPartnerAction("The two passwords differ.", fields={"password_again": ["Differs."]})
                user = organisation.invitation_accept_new_account(
                    digest=digest, username=values["username"], password=request.POST.get("password", ""),
                    ip=client_ip(request))
                login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        except DomainError as error:
            messages.error(request, error.message)
        else:
            request.session.pop(INVITATION_SESSION_KEY, None)
            messages.success(request, f"Welcome to {invitation.partner.name}. Accept the terms of use below, if "
                                      "asked, before downloading.")
            return redirect("portal-home")
    response = render(request, "portal/invitation.html", {
        "invitation": invitation, "state": invitation.state(), "values": values,
        "address_matches": request.user.is_authenticated
        and (request.user.email or "").lower() == invitation.email.lower()})
    response["Cache-Control"] = "no-store"
    return response


@login_required
def usage_csv(request: HttpRequest) -> HttpResponse:
    """The organisation's links, per size, revision and day, as CSV (releases/access/usage.py): partner admins."""
    admin = _as_partner_admin(request)
    if admin is None:
        return redirect("portal-home")
    response = HttpResponse(usage.usage_csv(usage.usage_rows(partner=admin.partner)),
                            content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="usage.csv"'
    return response
