"""Read API of the registry: thin views over selectors."""

from drf_spectacular.utils import extend_schema
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from registry import selectors
from registry.serializers import ModelSizeDetailSerializer, ModelSizeSummarySerializer


class ModelListView(ListAPIView):
    serializer_class = ModelSizeSummarySerializer

    def get_queryset(self):
        return selectors.model_size_list(user=self.request.user)


class ModelDetailView(APIView):
    @extend_schema(responses=ModelSizeDetailSerializer)
    def get(self, request: Request, slug: str) -> Response:
        size = selectors.model_size_get(slug=slug, user=request.user)
        return Response(ModelSizeDetailSerializer(size).data)
