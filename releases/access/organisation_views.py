"""A partner admin's organisation through the API, as on its portal page: members and their tokens, invitations,
removals and usage. Thin views over releases/access/organisation.py, which decides who may (403
`not_partner_admin` for anyone but a partner admin of an active organisation).

Reading (the organisation, its usage) takes a download token that names no sizes. Changing who belongs
(inviting, cancelling, removing, revoking) takes the signed-in session the portal uses: a download token sits
in scripts and CI, and one that leaked must not be able to let someone in or lock the members out."""

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api_errors import ErrorOutput
from config.client_ip import client_ip
from config.errors import NotFound
from releases.access import organisation, usage
from releases.access.models import PartnerInvitation, PartnerMember
from releases.access.serializers import (
    InvitationInput,
    InvitationOutput,
    MemberTokensRevokeInput,
    OrganisationOutput,
    RevokedTokensOutput,
    UsageRowOutput,
)
from releases.access.token_scopes import DOWNLOAD, TokenScopeRefused

REFUSALS = {401: ErrorOutput, 403: ErrorOutput}


class OrganisationAPIView(APIView):
    """Session (or a governance token, which partner admins do not hold) only: see the module's docstring."""

    permission_classes = [IsAuthenticated]

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        label = getattr(request.auth, "label", None)
        if label is not None and label.sizes:  # a narrow credential does not manage people
            raise TokenScopeRefused("This token is limited to some sizes' downloads; manage the organisation with "
                                    "an unlimited token or in the portal.")
        self.admin = organisation.admin_membership(request.user)


class OrganisationReadView(OrganisationAPIView):
    token_scope = DOWNLOAD


class OrganisationView(OrganisationReadView):
    """Your organisation (you are its partner admin): current members with their tokens, pending invitations."""

    @extend_schema(summary="Your organisation's members and invitations", responses={200: OrganisationOutput,
                                                                                    **REFUSALS})
    def get(self, request: Request) -> Response:
        return Response(OrganisationOutput(organisation.organisation_of(request.user)).data)


class InvitationCreateView(OrganisationAPIView):
    """Invite an email address: the link goes to that address only, by email."""

    @extend_schema(summary="Invite someone to your organisation", request=InvitationInput,
                   responses={201: InvitationOutput, 400: ErrorOutput, 409: ErrorOutput, **REFUSALS})
    def post(self, request: Request) -> Response:
        data = InvitationInput(data=request.data)
        data.is_valid(raise_exception=True)
        invitation = organisation.invitation_create(actor=request.user, ip=client_ip(request), **data.validated_data)
        return Response(InvitationOutput(invitation).data, status=201)


class InvitationNotFound(NotFound):
    code = "invitation_not_found"


class InvitationCancelView(OrganisationAPIView):
    @extend_schema(summary="Cancel a pending invitation", request=None,
                   responses={200: InvitationOutput, 404: ErrorOutput, 409: ErrorOutput, **REFUSALS})
    def post(self, request: Request, invitation_id: int) -> Response:
        invitation = PartnerInvitation.objects.filter(pk=invitation_id, partner=self.admin.partner).first()
        if invitation is None:
            raise InvitationNotFound(f"Your organisation has no invitation #{invitation_id}.")
        cancelled = organisation.invitation_cancel(invitation=invitation, actor=request.user, ip=client_ip(request))
        return Response(InvitationOutput(cancelled).data)


class MemberNotFound(NotFound):
    code = "member_not_found"


def _member(admin: PartnerMember, member_id: int) -> PartnerMember:
    member = PartnerMember.objects.current().select_related("user", "partner").filter(
        pk=member_id, partner=admin.partner).first()
    if member is None:
        raise MemberNotFound(f"{admin.partner.name} has no current member #{member_id}.")
    return member


class MemberRemoveView(OrganisationAPIView):
    @extend_schema(summary="Remove a member (their tokens are revoked)", request=None,
                   responses={200: RevokedTokensOutput, 400: ErrorOutput, 404: ErrorOutput, **REFUSALS})
    def post(self, request: Request, member_id: int) -> Response:
        revoked = organisation.member_remove(member=_member(self.admin, member_id), actor=request.user,
                                             ip=client_ip(request))
        return Response({"revoked_tokens": revoked})


class MemberTokensRevokeView(OrganisationAPIView):
    @extend_schema(summary="Revoke a member's tokens (one, with token_key)", request=MemberTokensRevokeInput,
                   responses={200: RevokedTokensOutput, 404: ErrorOutput, **REFUSALS})
    def post(self, request: Request, member_id: int) -> Response:
        data = MemberTokensRevokeInput(data=request.data)
        data.is_valid(raise_exception=True)
        revoked = organisation.member_tokens_revoke(member=_member(self.admin, member_id), actor=request.user,
                                                    token_key=data.validated_data.get("token_key"),
                                                    ip=client_ip(request))
        return Response({"revoked_tokens": revoked})


class UsageView(OrganisationReadView):
    """Links issued to your organisation per size, revision and day, with the bytes they cover."""

    @extend_schema(summary="Your organisation's usage", parameters=[
        OpenApiParameter("days", int, description="How many days back (default 90, at most 3650).")],
        responses={200: UsageRowOutput(many=True), **REFUSALS})
    def get(self, request: Request) -> Response:
        raw = request.query_params.get("days", "90")
        days = min(int(raw), 3650) if raw.isascii() and raw.isdigit() and len(raw) <= 6 else 90
        since = (timezone.now() - timedelta(days=days)).date()
        rows = usage.usage_rows(partner=self.admin.partner, since=since)
        return Response(UsageRowOutput(rows, many=True).data)
