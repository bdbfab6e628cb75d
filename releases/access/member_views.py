"""What a partner member does through the API as in the portal: their organisation's grants and access
requests, and the terms of use. Thin views over releases/access/grants.py and partners.py."""


from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api_errors import ErrorOutput
from config.client_ip import client_ip
from config.errors import Conflict, NotFound
from registry.errors import ModelSizeNotFound
from registry.filenames import is_slug
from releases.access import grants, partners, questions
from releases.access import rules as access
from releases.access.errors import InvalidPartnerAction
from releases.access.models import AccessRequest
from releases.access.serializers import (
    AccessQuestionOutput,
    AccessRequestInput,
    AccessRequestOutput,
    MemberGrantOutput,
    TermsAcceptInput,
    TermsOutput,
)
from releases.access.token_scopes import DOWNLOAD


class TermsNotFound(NotFound):
    code = "terms_not_found"


class TermsVersionMismatch(Conflict):
    code = "terms_version_mismatch"


class GrantListView(APIView):
    """Your organisation's grants, newest first, each with its state (none if you belong to no organisation)."""

    token_scope = DOWNLOAD

    permission_classes = [IsAuthenticated]

    @extend_schema(responses={200: MemberGrantOutput(many=True), 401: ErrorOutput})
    def get(self, request: Request) -> Response:
        return Response(MemberGrantOutput(grants.grants_of(request.user), many=True).data)


class AccessRequestListCreateView(APIView):
    """Your organisation's access requests; a new one for a size at the partners stage, with a purpose."""

    token_scope = DOWNLOAD

    permission_classes = [IsAuthenticated]

    @extend_schema(responses={200: AccessRequestOutput(many=True), 401: ErrorOutput})
    def get(self, request: Request) -> Response:
        return Response(AccessRequestOutput(grants.access_requests_of(request.user), many=True).data)

    @extend_schema(request=AccessRequestInput,
                   responses={201: AccessRequestOutput, 400: ErrorOutput, 401: ErrorOutput, 404: ErrorOutput,
                              409: ErrorOutput})
    def post(self, request: Request) -> Response:
        data = AccessRequestInput(data=request.data)
        data.is_valid(raise_exception=True)
        slug = data.validated_data["model_size"]
        size = access.visible_sizes(request.user).filter(slug=slug).first()
        if size is None:
            raise ModelSizeNotFound(f"No model size {slug!r}.")
        created = grants.access_request_create(user=request.user, size=size, purpose=data.validated_data["purpose"],
                                               answers=data.validated_data["answers"], ip=client_ip(request))
        return Response(AccessRequestOutput(created).data, status=201)




class AccessQuestionListView(APIView):
    """The questions a request for a size must answer (`?model_size=SLUG`), in the order they are asked."""

    token_scope = DOWNLOAD

    permission_classes = [IsAuthenticated]

    @extend_schema(parameters=[OpenApiParameter("model_size", str, required=True, description="e.g. mini-3m")],
                   responses={200: AccessQuestionOutput(many=True), 400: ErrorOutput, 401: ErrorOutput,
                              404: ErrorOutput})
    def get(self, request: Request) -> Response:
        slug = request.query_params.get("model_size", "")
        if not is_slug(slug):
            raise InvalidPartnerAction("Name the size by its slug: ?model_size=SLUG.",
                                       fields={"model_size": ["A slug, e.g. mini-3m."]})
        size = access.visible_sizes(request.user).filter(slug=slug).first()
        if size is None:
            raise ModelSizeNotFound(f"No model size {slug!r}.")
        return Response(AccessQuestionOutput(questions.questions_for(size), many=True).data)


class AccessRequestNotFound(NotFound):
    code = "access_request_not_found"


class AccessRequestWithdrawView(APIView):
    """Take back one of your organisation's pending access requests."""

    permission_classes = [IsAuthenticated]
    token_scope = DOWNLOAD

    @extend_schema(request=None, responses={200: AccessRequestOutput, 401: ErrorOutput, 404: ErrorOutput,
                                            409: ErrorOutput})
    def post(self, request: Request, request_id: int) -> Response:
        partner = grants.member_partner(request.user)
        mine = AccessRequest.objects.filter(pk=request_id, partner=partner).first() if partner else None
        if mine is None:  # someone else's is answered as none at all
            raise AccessRequestNotFound(f"Your organisation has no access request #{request_id}.")
        grants.access_request_withdraw(request=mine, user=request.user, ip=client_ip(request))
        mine.refresh_from_db()
        return Response(AccessRequestOutput(mine).data)


class TermsView(APIView):
    """The partner terms of use in force, and whether you have accepted them."""

    token_scope = DOWNLOAD

    permission_classes = [IsAuthenticated]

    @extend_schema(responses={200: TermsOutput, 401: ErrorOutput, 404: ErrorOutput})
    def get(self, request: Request) -> Response:
        terms = _in_force()
        terms.accepted = terms.acceptances.filter(user=request.user).exists()
        return Response(TermsOutput(terms).data)


class TermsAcceptView(APIView):
    """Accept the terms in force, naming the version you read (accepting again changes nothing)."""

    token_scope = DOWNLOAD

    permission_classes = [IsAuthenticated]

    @extend_schema(request=TermsAcceptInput, responses={200: TermsOutput, 400: ErrorOutput, 401: ErrorOutput,
                                                         404: ErrorOutput, 409: ErrorOutput})
    def post(self, request: Request) -> Response:
        data = TermsAcceptInput(data=request.data)
        data.is_valid(raise_exception=True)
        terms = _in_force()
        if data.validated_data["version"] != terms.version:
            raise TermsVersionMismatch(f"The terms in force are version {terms.version}, not "
                                       f"{data.validated_data['version']!r}: read them and accept that version.")
        partners.terms_accept(user=request.user, terms=terms, ip=client_ip(request))
        terms.accepted = True
        return Response(TermsOutput(terms).data)


def _in_force():
    terms = access.terms_in_force()
    if terms is None:
        raise TermsNotFound("No partner terms of use are in force yet.")
    return terms

