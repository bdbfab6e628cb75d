"""Release-governance API: staff endpoints for stage-change requests and reviews, the public history."""

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.client_ip import client_ip
from registry import selectors as registry_selectors
from releases.access.rules import visible_sizes
from releases.governance import reviews, selectors, stage_requests
from releases.governance.second_factor import OTP_PARAMETER, SecondFactorForChanges
from releases.governance.serializers import (
    CancelInput,
    DecisionInput,
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
from releases.roles import role_permission

# Every endpoint here is for policy staff; the services check the permission each decision needs.
IsPolicyStaff = role_permission("releases.view_stagechangerequest", to="take part in release decisions")


class StaffAPIView(APIView):
    permission_classes = [IsPolicyStaff, SecondFactorForChanges]


def _request_output(request_id: int) -> dict:
    return StageRequestOutput(selectors.stage_request_get(request_id=request_id)).data


class ModelStageRequestsView(StaffAPIView):
    @extend_schema(request=StageRequestCreateInput, responses={201: StageRequestOutput}, parameters=[OTP_PARAMETER])
    def post(self, request: Request, slug: str) -> Response:
        size = selectors.model_size_for_staff(slug=slug)
        data = StageRequestCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        created = stage_requests.stage_request_create(size=size, requester=request.user, ip=client_ip(request),
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


class StageRequestApproveView(StaffAPIView):
    @extend_schema(request=DecisionInput, responses=StageRequestOutput, parameters=[OTP_PARAMETER])
    def post(self, request: Request, request_id: int) -> Response:
        data = DecisionInput(data=request.data)
        data.is_valid(raise_exception=True)
        target = selectors.stage_request_get(request_id=request_id)
        stage_requests.stage_request_approve(request=target, approver=request.user, ip=client_ip(request),
                                       **data.validated_data)
        return Response(_request_output(request_id))


class StageRequestRejectView(StaffAPIView):
    @extend_schema(request=RejectInput, responses=StageRequestOutput, parameters=[OTP_PARAMETER])
    def post(self, request: Request, request_id: int) -> Response:
        data = RejectInput(data=request.data)
        data.is_valid(raise_exception=True)
        target = selectors.stage_request_get(request_id=request_id)
        stage_requests.stage_request_reject(request=target, approver=request.user, ip=client_ip(request),
                                      **data.validated_data)
        return Response(_request_output(request_id))


class StageRequestCancelView(StaffAPIView):
    @extend_schema(request=CancelInput, responses=StageRequestOutput, parameters=[OTP_PARAMETER])
    def post(self, request: Request, request_id: int) -> Response:
        data = CancelInput(data=request.data)
        data.is_valid(raise_exception=True)
        target = selectors.stage_request_get(request_id=request_id)
        stage_requests.stage_request_cancel(request=target, actor=request.user, ip=client_ip(request),
                                      **data.validated_data)
        return Response(_request_output(request_id))


class ModelReviewView(StaffAPIView):
    @extend_schema(request=ReviewInput, responses={201: ReviewOutput}, parameters=[OTP_PARAMETER])
    def post(self, request: Request, slug: str) -> Response:
        size = selectors.model_size_for_staff(slug=slug)
        data = ReviewInput(data=request.data)
        data.is_valid(raise_exception=True)
        review = reviews.stage_review_record(size=size, reviewer=request.user, ip=client_ip(request),
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
        size = registry_selectors.size_from(visible_sizes(request.user), slug=slug)  # internal sizes: 404
        changes = selectors.stage_history(size=size)
        return Response(ModelHistoryOutput({"model": size.slug, "stage": size.stage, "changes": changes}).data)
