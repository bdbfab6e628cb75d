"""The read side of the Hugging Face Hub's HTTP protocol, over releases/hub/repos.py.

The clients (`huggingface_hub`'s `hf_raise_for_status`) turn `X-Error-Code` into their own errors:
`RepoNotFound` → RepositoryNotFoundError, `GatedRepo` → GatedRepoError, `RevisionNotFound` →
RevisionNotFoundError, `EntryNotFound` → EntryNotFoundError; they show `X-Error-Message` (HEAD responses
have no body), which carries Stagegate's reason (`no_grant: …`). A HEAD on a file answers the file's
metadata and issues no link, so the clients' cache checks never use a partner's quota (an exhausted quota is
refused there as `GatedRepo` "quota_exhausted: …", see repos.file_check); a GET issues a link (recorded,
audited, counted) and redirects to it, or answers 429 with Retry-After as the link endpoint does.
"""

import re

from django.http import HttpResponse, HttpResponseRedirect, JsonResponse
from rest_framework.exceptions import AuthenticationFailed, NotAuthenticated, Throttled
from rest_framework.request import Request
from rest_framework.views import APIView

from config.client_ip import client_ip
from config.errors import DomainError
from config.throttles import DATASET_THROTTLES, LinkAnonThrottle
from releases.access.authentication import TokenAuthentication
from releases.access.errors import QuotaExhausted
from releases.access.token_scopes import DOWNLOAD
from releases.hub import repos
from releases.hub.repos import (
    DATASET,
    MODEL,
    EntryNotFound,
    Gated,
    Repo,
    RepoFile,
    RepoNotFound,
    UnknownRevision,
)

# huggingface_hub reads this message as "the token is wrong", not "no such repository".
INVALID_CREDENTIALS = "Invalid credentials in Authorization header"


def _error(status: int, code: str | None, message: str, *, repo: Repo | None = None,
           headers: dict[str, str] | None = None) -> JsonResponse:
    response = JsonResponse({"error": message, **({"error_code": code} if code else {})}, status=status)
    if code:
        response["X-Error-Code"] = code
    # Headers are latin-1; the message also travels in the body in full.
    response["X-Error-Message"] = re.sub(r"[\x00-\x1f\x7f]+", " ", message.encode("ascii", "replace").decode())
    if repo is not None:
        response["X-Repo-Commit"] = repo.commit
    for name, value in (headers or {}).items():
        response[name] = value
    response["Cache-Control"] = "no-store"
    return response


class HubView(APIView):
    """Answers every refusal as the Hub does. Not in the OpenAPI schema: the Hub's clients define this API."""

    token_scope = DOWNLOAD

    @property
    def token_size_kwarg(self) -> str | None:
        return "name" if self.kind == MODEL else None  # a model repository's name is its size's slug

    @property
    def token_dataset_kwarg(self) -> str | None:
        return "name" if self.kind == DATASET else None

    kind = MODEL
    schema = None
    # Tokens only: with the session cookie, a link on another site could make a signed-in partner's browser
    # issue links (and use their quota) in their name. The Hub's clients send tokens.
    authentication_classes = [TokenAuthentication]

    def handle_exception(self, exc):
        if isinstance(exc, RepoNotFound):
            return _error(404, "RepoNotFound", "Repository not found.")
        if isinstance(exc, Gated):
            # Anonymous: 401, as the Hub answers; a member without a grant: 403 with the reason.
            headers = {} if exc.authenticated else {"WWW-Authenticate": "Bearer"}
            if exc.retry_after_s:
                headers["Retry-After"] = str(exc.retry_after_s)
            return _error(403 if exc.authenticated else 401, "GatedRepo", f"{exc.reason}: {exc.detail}",
                          headers=headers)
        if isinstance(exc, UnknownRevision):
            return _error(404, "RevisionNotFound", "Invalid rev id: the repository has no such revision.")
        if isinstance(exc, EntryNotFound):
            return _error(404, "EntryNotFound", f"{exc.args[0]} does not exist in this revision.", repo=exc.repo)
        if isinstance(exc, QuotaExhausted):
            return _error(429, None, f"quota_exhausted: {exc.message}", headers=exc.headers)
        if isinstance(exc, (AuthenticationFailed, NotAuthenticated)):
            return _error(401, None, INVALID_CREDENTIALS, headers={"WWW-Authenticate": "Bearer"})
        if isinstance(exc, Throttled):
            return _error(429, None, "Too many requests.", headers={"Retry-After": str(int(exc.wait or 1))})
        if isinstance(exc, DomainError):  # storage unavailable (503) and the like
            return _error(exc.http_status, None, f"{exc.code}: {exc.message}", headers=getattr(exc, "headers", {}))
        return super().handle_exception(exc)

    def repo(self, request: Request, namespace: str, name: str, revision: str | None = None) -> Repo:
        return repos.repo_get(self.kind, request.user, f"{namespace}/{name}", revision)


def _entry(file: RepoFile) -> dict:
    return {"type": "file", "oid": file.blob_id, "size": file.bytes, "path": file.path,
            "lfs": {"oid": file.sha256, "size": file.bytes, "pointerSize": file.pointer_size}}


class RepoInfoView(HubView):
    """`GET /api/models/<repo>[/revision/<rev>]`: the repository, its resolved commit and its files."""

    def get(self, request: Request, namespace: str, name: str, revision: str | None = None) -> JsonResponse:
        repo = self.repo(request, namespace, name, revision)
        created = repo.created_at.isoformat().replace("+00:00", "Z")
        siblings = [{"rfilename": file.path, "size": file.bytes, "blobId": file.blob_id,
                     "lfs": {"sha256": file.sha256, "size": file.bytes, "pointerSize": file.pointer_size}}
                    for file in repo.files.values()]
        body = {
            "_id": repo.commit[:24], "id": repo.repo_id, "author": repo.repo_id.split("/")[0], "sha": repo.commit,
            "lastModified": created, "createdAt": created, "private": False,
            "gated": "manual" if repo.gated else False, "disabled": False, "downloads": 0, "likes": 0,
            "tags": [f"stagegate:{repo.stage}"], "siblings": siblings, "cardData": {},
            "usedStorage": sum(file.bytes for file in repo.files.values()),
        }
        if repo.kind == MODEL:
            body.update(modelId=repo.repo_id, library_name="transformers", pipeline_tag="text-generation",
                        config={"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]})
            body["tags"] += ["gpt2", "safetensors", "text-generation"]
        return JsonResponse(body, headers={"Cache-Control": "no-store"})


class RepoTreeView(HubView):
    """`GET /api/models/<repo>/tree/<rev>[/<path>]`: the files (every file sits at the top level)."""

    def get(self, request: Request, namespace: str, name: str, revision: str, path: str = "") -> JsonResponse:
        repo = self.repo(request, namespace, name, revision)
        path = path.strip("/")
        if path:
            raise EntryNotFound(repo, path)  # no folders
        return JsonResponse([_entry(file) for file in repo.files.values()], safe=False,
                            headers={"Cache-Control": "no-store"})


class PathsInfoView(HubView):
    """`POST /api/models/<repo>/paths-info/<rev>` with `paths`: those of them that are files."""

    def post(self, request: Request, namespace: str, name: str, revision: str) -> JsonResponse:
        repo = self.repo(request, namespace, name, revision)
        asked = request.data.getlist("paths") if hasattr(request.data, "getlist") else request.data.get("paths")
        if isinstance(asked, str):
            asked = [asked]
        if not isinstance(asked, list) or not all(isinstance(path, str) for path in asked):
            return _error(400, None, "`paths` must be a list of file paths.")
        found = [_entry(repo.files[path.strip("/")]) for path in asked if path.strip("/") in repo.files]
        return JsonResponse(found, safe=False, headers={"Cache-Control": "no-store"})


class ResolveView(HubView):
    """`HEAD|GET /<repo>/resolve/<rev>/<file>`: HEAD, the file's commit, sha256 and size; GET, a 302 to a
    fresh signed link (issued, counted, audited)."""

    throttle_classes = [LinkAnonThrottle]

    def get_throttles(self):
        return [] if self.request.method == "HEAD" else super().get_throttles()

    @staticmethod
    def _describe(response: HttpResponse, repo: Repo, file: RepoFile) -> HttpResponse:
        response["X-Repo-Commit"] = repo.commit
        response["ETag"] = f'"{file.sha256}"'
        response["X-Linked-Etag"] = f'"{file.sha256}"'
        response["X-Linked-Size"] = str(file.bytes)
        response["Cache-Control"] = "no-store"
        return response

    def head(self, request: Request, namespace: str, name: str, revision: str, filename: str) -> HttpResponse:
        repo = self.repo(request, namespace, name, revision)
        file = repos.file_check(repo, user=request.user, filename=filename)
        return self._describe(HttpResponse(status=200), repo, file)

    def get(self, request: Request, namespace: str, name: str, revision: str, filename: str) -> HttpResponse:
        repo = self.repo(request, namespace, name, revision)
        file = repos.file_get(repo, filename)
        url = repos.file_link(repo, user=request.user, filename=filename, ip=client_ip(request))
        return self._describe(HttpResponseRedirect(url), repo, file)


class DatasetResolveView(ResolveView):

    kind = DATASET
    throttle_classes = DATASET_THROTTLES

