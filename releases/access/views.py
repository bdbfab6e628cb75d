"""Download API: manifests and signed links to weights and to dataset splits, and the compatibility path of
OpenAI's 2019 dataset bucket. Thin views over releases/access/links.py and dataset_links.py."""

import re

from django.http import HttpResponseRedirect
from drf_spectacular.utils import extend_schema
from rest_framework.generics import ListAPIView
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api_errors import ErrorOutput
from config.client_ip import client_ip
from config.errors import NotFound
from config.throttles import DATASET_THROTTLES, LinkAnonThrottle
from registry.datasets.errors import DatasetNotFound
from releases.access import dataset_links, links, tokens
from releases.access.serializers import (
    LinkOutput,
    ManifestOutput,
    RevisionOutput,
    RevisionQuery,
    TokenCreatedOutput,
    TokenCreateInput,
    TokenOutput,
)
from releases.access.token_scopes import DOWNLOAD
from releases.governance.second_factor import SecondFactorRequired, code_matches, session_verified

_DENIALS = {401: ErrorOutput, 403: ErrorOutput, 404: ErrorOutput, 429: ErrorOutput, 503: ErrorOutput}
_DATASET_DENIALS = {404: ErrorOutput, 429: ErrorOutput, 503: ErrorOutput}
_NO_STORE = {"Cache-Control": "no-store"}  # links are personal and short-lived: never cache them


def _revision(request: Request) -> str | None:
    query = RevisionQuery(data=request.query_params)
    query.is_valid(raise_exception=True)
    return query.validated_data.get("revision")


def _issue(request: Request, slug: str, filename: str) -> links.Link:
    size = links.size_by_slug(slug=slug)
    return links.link_issue(user=request.user, size=size, filename=filename, revision=_revision(request),
                            ip=client_ip(request))


class ModelManifestView(APIView):
    """A revision's files with bytes and sha256 (`?revision=`, default: the newest you may have), its stage and
    your grant: what a client plans with."""

    token_scope = DOWNLOAD
    token_size_kwarg = "slug"

    @extend_schema(parameters=[RevisionQuery], responses={200: ManifestOutput, 400: ErrorOutput, **_DENIALS})
    def get(self, request: Request, slug: str) -> Response:
        manifest = links.manifest_get(user=request.user, size=links.size_by_slug(slug=slug),
                                      revision=_revision(request))
        return Response(ManifestOutput(manifest).data, headers=_NO_STORE)


class ModelRevisionsView(APIView):
    """The revisions of a size you may download (staff: every one), newest first, each with its files."""

    token_scope = DOWNLOAD
    token_size_kwarg = "slug"

    @extend_schema(responses={200: RevisionOutput(many=True), **_DENIALS})
    def get(self, request: Request, slug: str) -> Response:
        size = links.size_by_slug(slug=slug)
        shown = [revision for revision, _decision in links.revisions_for(request.user, size)]
        if not shown:  # nothing the caller may have: say why, as the manifest would
            links.manifest_get(user=request.user, size=size)
        return Response(RevisionOutput(shown, many=True).data)


class ModelFileLinkView(APIView):
    """A fresh signed link to one file. Ask again for a new one whenever a link expires."""

    token_scope = DOWNLOAD
    token_size_kwarg = "slug"

    throttle_classes = [LinkAnonThrottle]

    @extend_schema(request=None, parameters=[RevisionQuery], responses={200: LinkOutput, 400: ErrorOutput, **_DENIALS})
    def post(self, request: Request, slug: str, filename: str) -> Response:
        link = _issue(request, slug, filename)
        body = {"url": link.url, "expires_at": link.expires_at, "bytes": link.record.bytes,
                "sha256": link.record.sha256, "revision": link.record.revision.revision}
        return Response(LinkOutput(body).data, headers=_NO_STORE)


class ModelFileView(APIView):
    """302 to a fresh signed link, so `curl -L -H "Authorization: Token …"` downloads the file."""

    token_scope = DOWNLOAD
    token_size_kwarg = "slug"

    throttle_classes = [LinkAnonThrottle]

    @extend_schema(parameters=[RevisionQuery],
                   responses={(302, "application/octet-stream"): None, 400: ErrorOutput, **_DENIALS})
    def get(self, request: Request, slug: str, filename: str) -> HttpResponseRedirect:
        response = HttpResponseRedirect(_issue(request, slug, filename).url)
        response["Cache-Control"] = "no-store"
        return response


# --------------------------------------------------------------------------- dataset splits
class DatasetSplitLinkView(APIView):
    """A fresh signed link to one split (`<name>.<split>.jsonl`). Ask again whenever a link expires."""

    token_scope = DOWNLOAD
    token_dataset_kwarg = "name"

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

    token_scope = DOWNLOAD
    token_dataset_kwarg = "filename"

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


# --------------------------------------------------------------------------- the caller's own API tokens
class TokenNotFound(NotFound):
    code = "token_not_found"


def _verified_now(request: Request, code: str) -> bool:
    """A new token is verified when its owner passes a second factor now: a verified session or token, or a
    current code. A code that is given and wrong refuses the request rather than quietly dropping it."""
    if code:
        if not code_matches(request.user, code):
            raise SecondFactorRequired("That code is not the current code of any of your devices.")
        return True
    label = getattr(getattr(request, "auth", None), "label", None)
    return session_verified(request) or bool(getattr(label, "verified", False))


class TokenListCreateView(ListAPIView):
    """Your API tokens (public prefixes only), and a new one for yourself. Nobody creates tokens for others."""

    permission_classes = [IsAuthenticated]
    serializer_class = TokenOutput
    pagination_class = None

    def get_queryset(self):
        return tokens.tokens_of(self.request.user)

    @extend_schema(request=TokenCreateInput, responses={201: TokenCreatedOutput, 401: ErrorOutput, 403: ErrorOutput})
    def post(self, request: Request) -> Response:
        data = TokenCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        verified = _verified_now(request, data.validated_data["otp_token"])
        token, key = tokens.token_create(user=request.user, name=data.validated_data["name"],
                                         expires_days=data.validated_data["expires_days"], actor=request.user,
                                         verified=verified, scope=data.validated_data["scope"],
                                         sizes=data.validated_data["sizes"], ip=client_ip(request))
        token.key = key
        return Response(TokenCreatedOutput(token).data, status=201, headers=_NO_STORE)


class TokenRevokeView(APIView):
    """Revoke one of your tokens: the next request that sends it gets 401."""

    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={204: None, 401: ErrorOutput, 404: ErrorOutput})
    def post(self, request: Request, token_key: str) -> Response:
        token = tokens.tokens_of(request.user).filter(token_key=token_key).first()
        if token is None:
            raise TokenNotFound(f"You have no token {token_key!r}.")
        tokens.token_revoke(token=token, actor=request.user, ip=client_ip(request))
        return Response(status=204)
