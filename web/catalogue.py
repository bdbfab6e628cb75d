"""The catalogue API: model sizes and output datasets, each shown only to those who may know it exists
(releases.access.rules decides; internal sizes and unpublished datasets are 404 to everyone else)."""

from drf_spectacular.utils import extend_schema
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api_errors import ErrorOutput
from config.throttles import DATASET_THROTTLES
from registry import selectors
from registry.datasets import selectors as dataset_selectors
from registry.datasets.serializers import DatasetOutput
from registry.serializers import ModelSizeDetailSerializer, ModelSizeSummarySerializer
from releases.access import links
from releases.access.rules import visible_datasets, visible_sizes
from releases.access.token_scopes import DOWNLOAD


class ModelListView(ListAPIView):
    """Every model size you may know exists, with its family, stage and shape."""

    token_scope = DOWNLOAD

    serializer_class = ModelSizeSummarySerializer

    def get_queryset(self):
        return selectors.sizes_for_display(visible_sizes(self.request.user))


class ModelDetailView(APIView):
    """One model size: its stage, shape, card, evaluations, training runs and revisions."""

    token_scope = DOWNLOAD
    token_size_kwarg = "slug"

    @extend_schema(responses=ModelSizeDetailSerializer)
    def get(self, request: Request, slug: str) -> Response:
        size = selectors.size_from(visible_sizes(request.user), slug=slug)
        shown = [revision for revision, _decision in links.revisions_for(request.user, size)]
        return Response(ModelSizeDetailSerializer(size, context={"revisions": shown}).data)


class DatasetListView(ListAPIView):
    """Published output datasets (staff also see unpublished ones)."""

    token_scope = DOWNLOAD

    serializer_class = DatasetOutput
    throttle_classes = DATASET_THROTTLES

    def get_queryset(self):
        return dataset_selectors.datasets_for_display(visible_datasets(self.request.user))


class DatasetDetailView(APIView):
    """One output dataset: its splits with checksums, statistics, detection results and card."""

    token_scope = DOWNLOAD
    token_dataset_kwarg = "name"

    throttle_classes = DATASET_THROTTLES

    @extend_schema(responses={200: DatasetOutput, 404: ErrorOutput, 429: ErrorOutput, 503: ErrorOutput})
    def get(self, request: Request, name: str) -> Response:
        dataset = dataset_selectors.dataset_from(visible_datasets(request.user), name=name)
        return Response(DatasetOutput(dataset).data)
