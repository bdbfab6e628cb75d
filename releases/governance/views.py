"""Release-governance API: staff endpoints for stage-change requests and reviews, the public history."""

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.client_ip import client_ip
from registry import selectors as registry_selectors
from registry.datasets.errors import DatasetNotFound
from registry.models import OutputDataset
from registry.revisions import revision_get
from releases.access.rules import visible_sizes
from releases.governance import purges, reviews, selectors, stage_requests
from releases.governance.second_factor import OTP_PARAMETER, SecondFactorForChanges
from releases.governance.serializers import (
    CancelInput,
    DatasetStageRequestInput,
    DecisionInput,
    ModelHistoryOutput,
    PurgeInput,
    PurgeOutput,
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
    """Ask to move a revision of a size (default: its newest) to another stage, or withdraw the whole size."""

    @extend_schema(request=StageRequestCreateInput, responses={201: StageRequestOutput}, parameters=[OTP_PARAMETER])
    def post(self, request: Request, slug: str) -> Response:
        size = selectors.model_size_for_staff(slug=slug)
        data = StageRequestCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        revision = revision_get(size, values.pop("revision")) if "revision" in values else None
        created = stage_requests.stage_request_create(size=size, revision=revision, requester=request.user,
                                                      ip=client_ip(request), **values)
        return Response(_request_output(created.pk), status=status.HTTP_201_CREATED)


class DatasetStageRequestsView(StaffAPIView):
    """Ask to move an output dataset through the stages (the same rules and approvals as a revision's)."""

    @extend_schema(request=DatasetStageRequestInput, responses={201: StageRequestOutput},
                   parameters=[OTP_PARAMETER])
    def post(self, request: Request, name: str) -> Response:
        dataset = OutputDataset.objects.filter(name=name).first()
        if dataset is None:
            raise DatasetNotFound(f"No dataset {name!r}.")
        data = DatasetStageRequestInput(data=request.data)
        data.is_valid(raise_exception=True)
        created = stage_requests.stage_request_create(dataset=dataset, requester=request.user,
                                                      ip=client_ip(request), **data.validated_data)
        return Response(_request_output(created.pk), status=status.HTTP_201_CREATED)


class StageRequestListView(ListAPIView):
    """Stage-change requests, newest first, filtered by status."""

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
    """One stage-change request with its decisions and what it releases."""

    @extend_schema(responses=StageRequestOutput)
    def get(self, request: Request, request_id: int) -> Response:
        return Response(_request_output(request_id))


class StageRequestApproveView(StaffAPIView):
    """Approve a request (never your own); the approval that reaches the required count applies it."""

    @extend_schema(request=DecisionInput, responses=StageRequestOutput, parameters=[OTP_PARAMETER])
    def post(self, request: Request, request_id: int) -> Response:
        data = DecisionInput(data=request.data)
        data.is_valid(raise_exception=True)
        target = selectors.stage_request_get(request_id=request_id)
        stage_requests.stage_request_approve(request=target, approver=request.user, ip=client_ip(request),
                                       **data.validated_data)
        return Response(_request_output(request_id))


class StageRequestRejectView(StaffAPIView):
    """Reject a request with a comment; one rejection ends it."""

    @extend_schema(request=RejectInput, responses=StageRequestOutput, parameters=[OTP_PARAMETER])
    def post(self, request: Request, request_id: int) -> Response:
        data = RejectInput(data=request.data)
        data.is_valid(raise_exception=True)
        target = selectors.stage_request_get(request_id=request_id)
        stage_requests.stage_request_reject(request=target, approver=request.user, ip=client_ip(request),
                                      **data.validated_data)
        return Response(_request_output(request_id))


class StageRequestCancelView(StaffAPIView):
    """Cancel a pending or embargoed request (also stops an embargo)."""

    @extend_schema(request=CancelInput, responses=StageRequestOutput, parameters=[OTP_PARAMETER])
    def post(self, request: Request, request_id: int) -> Response:
        data = CancelInput(data=request.data)
        data.is_valid(raise_exception=True)
        target = selectors.stage_request_get(request_id=request_id)
        stage_requests.stage_request_cancel(request=target, actor=request.user, ip=client_ip(request),
                                      **data.validated_data)
        return Response(_request_output(request_id))


class ModelReviewView(StaffAPIView):
    """Record a review of a size's current stage and when it is next due."""

    @extend_schema(request=ReviewInput, responses={201: ReviewOutput}, parameters=[OTP_PARAMETER])
    def post(self, request: Request, slug: str) -> Response:
        size = selectors.model_size_for_staff(slug=slug)
        data = ReviewInput(data=request.data)
        data.is_valid(raise_exception=True)
        review = reviews.stage_review_record(size=size, reviewer=request.user, ip=client_ip(request),
                                              **data.validated_data)
        return Response(ReviewOutput(review).data, status=status.HTTP_201_CREATED)


class RevisionPurgeView(StaffAPIView):
    """Delete a revision that was never released, and the stored objects only it held."""

    @extend_schema(request=PurgeInput, responses={200: PurgeOutput}, parameters=[OTP_PARAMETER])
    def post(self, request: Request, slug: str, revision: str) -> Response:
        target = revision_get(selectors.model_size_for_staff(slug=slug), revision)
        data = PurgeInput(data=request.data)
        data.is_valid(raise_exception=True)
        deleted = purges.revision_purge(revision=target, actor=request.user, ip=client_ip(request),
                                        **data.validated_data)
        return Response(PurgeOutput({"revision": revision, "objects_deleted": deleted}).data)


class ReleaseStateView(StaffAPIView):
    """What stage each size was in, and who could download it, at a moment in the past."""

    @extend_schema(parameters=[ReleaseStateQuery], responses=ReleaseStateOutput)
    def get(self, request: Request) -> Response:
        query = ReleaseStateQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        at = query.validated_data["at"]
        state = selectors.release_state_on(when=at)
        return Response(ReleaseStateOutput({"at": at, "sizes": state.sizes, "revisions": state.revisions,
                                            "datasets": state.datasets}).data)


class ModelHistoryView(APIView):
    """Public: the applied stage changes of a visible size, with the public part of each rationale."""

    @extend_schema(responses=ModelHistoryOutput)
    def get(self, request: Request, slug: str) -> Response:
        size = registry_selectors.size_from(visible_sizes(request.user), slug=slug)  # internal sizes: 404
        changes = selectors.stage_history(size=size)
        return Response(ModelHistoryOutput({"model": size.slug, "stage": size.stage, "changes": changes}).data)
