"""Release-governance API: staff endpoints for stage-change requests and reviews, the public history."""

from django.http import HttpResponseRedirect
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.generics import ListAPIView
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from registry import selectors as registry_selectors
from releases import links, selectors, services
from releases.audit import client_ip
from releases.errors import NotPolicyStaff
from releases.roles import is_policy_staff
from releases.second_factor import second_factor_require
from releases.serializers import (
    CancelInput,
    DecisionInput,
    ErrorOutput,
    LinkOutput,
    ManifestOutput,
    ModelHistoryOutput,
    RejectInput,
    ReleaseStateOutput,
    ReleaseStateQuery,
    ReviewInput,
    ReviewOutput,
    StageRequestCreateInput,
    StageRequestListQuery,
    StageRequestOutput,
)


class IsPolicyStaff(BasePermission):
    """Members of the policy-staff group; anonymous callers get 401, everyone else (superusers too) 403."""

    def has_permission(self, request: Request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        if not is_policy_staff(request.user):
            raise NotPolicyStaff(
                "Release decisions need membership of the policy-staff group; superusers get no bypass."
            )
        return True


class StaffAPIView(APIView):
    permission_classes = [IsPolicyStaff]


def _request_output(request_id: int) -> dict:
    return StageRequestOutput(selectors.stage_request_get(request_id=request_id)).data


class ModelStageRequestsView(StaffAPIView):
    @extend_schema(request=StageRequestCreateInput, responses={201: StageRequestOutput})
    def post(self, request: Request, slug: str) -> Response:
        size = selectors.model_size_for_staff(slug=slug)
        data = StageRequestCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        created = services.stage_request_create(size=size, requester=request.user, ip=client_ip(request),
                                                **data.validated_data)
        return Response(_request_output(created.pk), status=status.HTTP_201_CREATED)


class StageRequestListView(ListAPIView):
    permission_classes = [IsPolicyStaff]
    serializer_class = StageRequestOutput

    @extend_schema(parameters=[StageRequestListQuery])
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        query = StageRequestListQuery(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        slug = query.validated_data.get("model")
        size = selectors.model_size_for_staff(slug=slug) if slug else None
        return selectors.stage_request_list(status=query.validated_data.get("status"), size=size)


class StageRequestDetailView(StaffAPIView):
    @extend_schema(responses=StageRequestOutput)
    def get(self, request: Request, request_id: int) -> Response:
        return Response(_request_output(request_id))


def _otp_token(request: Request) -> str | None:
    return request.data.get("otp_token") if hasattr(request.data, "get") else None


class StageRequestApproveView(StaffAPIView):
    @extend_schema(request=DecisionInput, responses=StageRequestOutput)
    def post(self, request: Request, request_id: int) -> Response:
        data = DecisionInput(data=request.data)
        data.is_valid(raise_exception=True)
        second_factor_require(request, token=_otp_token(request))
        target = selectors.stage_request_get(request_id=request_id)
        services.stage_request_approve(request=target, approver=request.user, ip=client_ip(request),
                                       **data.validated_data)
        return Response(_request_output(request_id))


class StageRequestRejectView(StaffAPIView):
    @extend_schema(request=RejectInput, responses=StageRequestOutput)
    def post(self, request: Request, request_id: int) -> Response:
        data = RejectInput(data=request.data)
        data.is_valid(raise_exception=True)
        second_factor_require(request, token=_otp_token(request))
        target = selectors.stage_request_get(request_id=request_id)
        services.stage_request_reject(request=target, approver=request.user, ip=client_ip(request),
                                      **data.validated_data)
        return Response(_request_output(request_id))


class StageRequestCancelView(StaffAPIView):
    @extend_schema(request=CancelInput, responses=StageRequestOutput)
    def post(self, request: Request, request_id: int) -> Response:
        data = CancelInput(data=request.data)
        data.is_valid(raise_exception=True)
        target = selectors.stage_request_get(request_id=request_id)
        services.stage_request_cancel(request=target, actor=request.user, ip=client_ip(request),
                                      **data.validated_data)
        return Response(_request_output(request_id))


class ModelReviewView(StaffAPIView):
    @extend_schema(request=ReviewInput, responses={201: ReviewOutput})
    def post(self, request: Request, slug: str) -> Response:
        size = selectors.model_size_for_staff(slug=slug)
        data = ReviewInput(data=request.data)
        data.is_valid(raise_exception=True)
        review = services.stage_review_record(size=size, reviewer=request.user, ip=client_ip(request),
                                              **data.validated_data)
        return Response(ReviewOutput(review).data, status=status.HTTP_201_CREATED)


class ReleaseStateView(StaffAPIView):
    """What stage each size was in, and who could download it, at a moment in the past."""

    @extend_schema(parameters=[ReleaseStateQuery], responses=ReleaseStateOutput)
    def get(self, request: Request) -> Response:
        query = ReleaseStateQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        at = query.validated_data["at"]
        return Response(ReleaseStateOutput({"at": at, "sizes": selectors.release_state_on(when=at)}).data)


class ModelHistoryView(APIView):
    """Public: the applied stage changes of a visible size, with the public part of each rationale."""

    @extend_schema(responses=ModelHistoryOutput)
    def get(self, request: Request, slug: str) -> Response:
        size = registry_selectors.model_size_get(slug=slug, user=request.user)  # internal sizes: 404
        changes = selectors.stage_history(size=size)
        return Response(ModelHistoryOutput({"model": size.slug, "stage": size.stage, "changes": changes}).data)


# --------------------------------------------------------------------------- downloads (issue 5)
_DENIALS = {401: ErrorOutput, 403: ErrorOutput, 404: ErrorOutput, 429: ErrorOutput, 503: ErrorOutput}
_NO_STORE = {"Cache-Control": "no-store"}  # links are personal and short-lived: never cache them


def _issue(request: Request, slug: str, filename: str) -> links.Link:
    size = links.size_by_slug(slug=slug)
    return links.link_issue(user=request.user, size=size, filename=filename, ip=client_ip(request))


class ModelManifestView(APIView):
    """Every file of a size with bytes and sha256, its stage and the caller's grant: what a client plans with."""

    @extend_schema(responses={200: ManifestOutput, **_DENIALS})
    def get(self, request: Request, slug: str) -> Response:
        manifest = links.manifest_get(user=request.user, size=links.size_by_slug(slug=slug))
        return Response(ManifestOutput(manifest).data, headers=_NO_STORE)


class ModelFileLinkView(APIView):
    """A fresh signed link to one file. Ask again for a new one whenever a link expires."""

    @extend_schema(request=None, responses={200: LinkOutput, **_DENIALS})
    def post(self, request: Request, slug: str, filename: str) -> Response:
        link = _issue(request, slug, filename)
        body = {"url": link.url, "expires_at": link.expires_at, "bytes": link.record.bytes,
                "sha256": link.record.sha256}
        return Response(LinkOutput(body).data, headers=_NO_STORE)


class ModelFileView(APIView):
    """302 to a fresh signed link, so `curl -L -H "Authorization: Token …"` downloads the file."""

    @extend_schema(responses={(302, "application/octet-stream"): None, **_DENIALS})
    def get(self, request: Request, slug: str, filename: str) -> HttpResponseRedirect:
        response = HttpResponseRedirect(_issue(request, slug, filename).url)
        response["Cache-Control"] = "no-store"
        return response
