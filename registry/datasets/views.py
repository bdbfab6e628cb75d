"""Dataset API (anonymous, rate-limited) and the compatibility path of OpenAI's 2019 bucket layout."""

import re

from django.http import HttpResponseRedirect
from drf_spectacular.utils import extend_schema
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from registry.datasets import selectors
from registry.datasets.errors import DatasetNotFound
from registry.datasets.serializers import DatasetOutput
from registry.datasets.throttles import DATASET_THROTTLES
from releases import dataset_links
from releases.audit import client_ip
from releases.serializers import ErrorOutput, LinkOutput

_NO_STORE = {"Cache-Control": "no-store"}  # links are short-lived: never cache them
_DENIALS = {404: ErrorOutput, 429: ErrorOutput, 503: ErrorOutput}


class DatasetListView(ListAPIView):
    """Published output datasets (staff also see unpublished ones)."""

    serializer_class = DatasetOutput
    throttle_classes = DATASET_THROTTLES

    def get_queryset(self):
        return selectors.dataset_list(user=self.request.user)


class DatasetDetailView(APIView):
    throttle_classes = DATASET_THROTTLES

    @extend_schema(responses={200: DatasetOutput, **_DENIALS})
    def get(self, request: Request, name: str) -> Response:
        return Response(DatasetOutput(selectors.dataset_get(name=name, user=request.user)).data)


class DatasetSplitLinkView(APIView):
    """A fresh signed link to one split (`<name>.<split>.jsonl`). Ask again whenever a link expires."""

    throttle_classes = DATASET_THROTTLES

    @extend_schema(request=None, responses={200: LinkOutput, **_DENIALS})
    def post(self, request: Request, name: str, split: str) -> Response:
        link = dataset_links.dataset_link_issue(user=request.user, name=name, split=split, ip=client_ip(request))
        body = {"url": link.url, "expires_at": link.expires_at, "bytes": link.split.bytes, "sha256": link.split.sha256}
        return Response(LinkOutput(body).data, headers=_NO_STORE)


# `<dataset>.<split>.jsonl`, dataset names being slugs (no dots).
COMPAT_FILENAME = re.compile(r"(?P<name>[A-Za-z0-9_-]{1,100})\.(?P<split>train|valid|test)\.jsonl", re.ASCII)


class CompatDatasetFileView(APIView):
    """`/gpt-2/output-dataset/v1/<dataset>.<split>.jsonl` → 302 to a signed URL, as the 2019 bucket served it.

    Storage answers the signed GET with the file's Content-Length, which the 2019 download script sizes
    its progress bar from.
    """

    throttle_classes = DATASET_THROTTLES

    @extend_schema(responses={(302, "application/x-ndjson"): None, **_DENIALS})
    def get(self, request: Request, filename: str) -> HttpResponseRedirect:
        match = COMPAT_FILENAME.fullmatch(filename)
        if match is None:
            raise DatasetNotFound(f"No dataset file {filename!r}: expected <dataset>.<train|valid|test>.jsonl.")
        link = dataset_links.dataset_link_issue(user=request.user, name=match["name"], split=match["split"],
                                                ip=client_ip(request))
        response = HttpResponseRedirect(link.url)
        response["Cache-Control"] = "no-store"
        return response
