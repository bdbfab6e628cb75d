"""Download API: manifests and signed links to weights and to dataset splits, and the compatibility path of
OpenAI's 2019 dataset bucket. Thin views over releases/access/links.py and dataset_links.py."""

import re

from django.http import HttpResponseRedirect
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api_errors import ErrorOutput
from config.client_ip import client_ip
from config.throttles import DATASET_THROTTLES, LinkAnonThrottle
from registry.datasets.errors import DatasetNotFound
from releases.access import dataset_links, links
from releases.access.serializers import LinkOutput, ManifestOutput

_DENIALS = {401: ErrorOutput, 403: ErrorOutput, 404: ErrorOutput, 429: ErrorOutput, 503: ErrorOutput}
_DATASET_DENIALS = {404: ErrorOutput, 429: ErrorOutput, 503: ErrorOutput}
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

    throttle_classes = [LinkAnonThrottle]

    @extend_schema(request=None, responses={200: LinkOutput, **_DENIALS})
    def post(self, request: Request, slug: str, filename: str) -> Response:
        link = _issue(request, slug, filename)
        body = {"url": link.url, "expires_at": link.expires_at, "bytes": link.record.bytes,
                "sha256": link.record.sha256}
        return Response(LinkOutput(body).data, headers=_NO_STORE)


class ModelFileView(APIView):
    """302 to a fresh signed link, so `curl -L -H "Authorization: Token …"` downloads the file."""

    throttle_classes = [LinkAnonThrottle]

    @extend_schema(responses={(302, "application/octet-stream"): None, **_DENIALS})
    def get(self, request: Request, slug: str, filename: str) -> HttpResponseRedirect:
        response = HttpResponseRedirect(_issue(request, slug, filename).url)
        response["Cache-Control"] = "no-store"
        return response


# --------------------------------------------------------------------------- dataset splits
class DatasetSplitLinkView(APIView):
    """A fresh signed link to one split (`<name>.<split>.jsonl`). Ask again whenever a link expires."""

    throttle_classes = DATASET_THROTTLES

    @extend_schema(request=None, responses={200: LinkOutput, **_DATASET_DENIALS})
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

    @extend_schema(responses={(302, "application/x-ndjson"): None, **_DATASET_DENIALS})
    def get(self, request: Request, filename: str) -> HttpResponseRedirect:
        match = COMPAT_FILENAME.fullmatch(filename)
        if match is None:
            raise DatasetNotFound(f"No dataset file {filename!r}: expected <dataset>.<train|valid|test>.jsonl.")
        link = dataset_links.dataset_link_issue(user=request.user, name=match["name"], split=match["split"],
                                                ip=client_ip(request))
        response = HttpResponseRedirect(link.url)
        response["Cache-Control"] = "no-store"
        return response
