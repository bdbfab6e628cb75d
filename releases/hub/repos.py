"""Stagegate's sizes and output datasets as Hugging Face Hub repositories, read-only, for the clients people
already have (`huggingface_hub`, `transformers`, `datasets`, pointed here by HF_ENDPOINT).

- A model repository is `<family slug>/<size slug>`; its commits are the size's revisions (their 40-hex ids),
  and `main` is the newest revision the caller may have (`links.revision_for`).
- A dataset repository is `<family slug>/<dataset name>`, its files `<name>.<split>.jsonl`. A dataset has one
  state, so one commit, named by its content (`dataset_commit`). Reference text, which belongs to no size,
  is found under every family.
- Access is the one access rule (releases/access/rules.py), asked through the same functions as the rest of
  the API; nothing here decides who may have what. What is invisible to the caller is `RepoNotFound`, as if
  it did not exist.

Every file is described as a Git LFS file (its sha256 and size, which the registry holds for every file),
so clients name their cache by the sha256 the registry recorded; `hf_hub_download` (huggingface_hub 2.4) then
checks only a download's size, and its `verify_repo_checksums`, on request, the sha256.
"""

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime

from registry.datasets.errors import DatasetNotFound
from registry.errors import ModelSizeNotFound, RevisionNotFound
from registry.models import DatasetSplit, ModelFamily, ModelSize, OutputDataset, Revision
from releases.access import dataset_links, links
from releases.access import rules as access
from releases.access.errors import AccessDenied

MAIN = "main"
MODEL, DATASET = "model", "dataset"
# Slugs on both sides of the slash; anything else is no repository (and never reaches a query).
REPO_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", re.ASCII)
COMMIT = re.compile(r"[0-9a-f]{40}", re.ASCII)
LFS_POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {bytes}\n"


class RepoNotFound(Exception):
    """No repository, or one the caller may not know exists."""


class Gated(Exception):
    """A repository the caller may know of but not read: `reason` is the access rule's (no_grant, …)."""

    def __init__(self, reason: str, detail: str, *, authenticated: bool, retry_after_s: int | None = None) -> None:
        super().__init__(detail)
        self.reason, self.detail, self.authenticated = reason, detail, authenticated
        self.retry_after_s = retry_after_s


class UnknownRevision(Exception):
    pass


class EntryNotFound(Exception):
    def __init__(self, repo: "Repo", path: str) -> None:
        super().__init__(path)
        self.repo = repo


@dataclass(frozen=True)
class RepoFile:
    path: str
    bytes: int
    sha256: str

    @property
    def pointer_size(self) -> int:
        return len(self._pointer())

    @property
    def blob_id(self) -> str:
        """The git blob id of the file's LFS pointer, as a Git LFS repository would list it."""
        pointer = self._pointer()
        return hashlib.sha1(b"blob %d\0" % len(pointer) + pointer).hexdigest()  # noqa: S324 - git's own id

    def _pointer(self) -> bytes:
        return LFS_POINTER.format(sha256=self.sha256, bytes=self.bytes).encode()


@dataclass(frozen=True)
class Repo:
    kind: str
    repo_id: str
    commit: str
    files: dict[str, RepoFile]
    created_at: datetime
    stage: str
    subject: ModelSize | OutputDataset
    revision: Revision | None = None  # models only

    @property
    def gated(self) -> bool:
        return self.stage == "partners"


def split_repo_id(repo_id: str) -> tuple[str, str]:
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(REPO_PART.fullmatch(part) for part in parts):
        raise RepoNotFound(repo_id)
    return parts[0], parts[1]


def _requested(revision: str | None) -> str | None:
    """None for `main` (the newest the caller may have); a revision id as given; anything else is unknown."""
    if revision in (None, "", MAIN):
        return None
    if not COMMIT.fullmatch(revision):
        raise UnknownRevision(revision)
    return revision


# --------------------------------------------------------------------------- models
def model_repo(user, repo_id: str, revision: str | None = None) -> Repo:
    """The model repository `repo_id` at `revision` (default `main`), if the caller may read it."""
    family_slug, size_slug = split_repo_id(repo_id)
    size = (access.visible_sizes(user).select_related("family")
            .filter(family__slug=family_slug, slug=size_slug).first())
    if size is None:
        raise RepoNotFound(repo_id)
    requested = _requested(revision)
    try:
        chosen, decision = links.revision_for(user, size, requested)
    except ModelSizeNotFound:
        raise RepoNotFound(repo_id) from None
    except RevisionNotFound:
        raise UnknownRevision(revision) from None
    if not decision.allowed:
        if decision.reason in (access.STAGE_INTERNAL, access.WITHDRAWN):  # as if it did not exist
            raise (UnknownRevision(revision) if requested else RepoNotFound(repo_id))
        raise Gated(decision.reason, decision.detail, authenticated=user is not None and user.is_authenticated)
    files = {artifact.filename: RepoFile(artifact.filename, artifact.bytes, artifact.sha256)
             for artifact in chosen.artifacts.order_by("filename")}
    return Repo(kind=MODEL, repo_id=f"{size.family.slug}/{size.slug}", commit=chosen.revision, files=files,
                created_at=chosen.created_at, stage=chosen.stage, subject=size, revision=chosen)


# --------------------------------------------------------------------------- datasets
def dataset_commit(parts: list[DatasetSplit]) -> str:
    """A dataset's one commit id: named by its files (`parts`, its splits), so it changes if a split ever does."""
    digest = hashlib.sha1(usedforsecurity=False)
    for part in sorted(parts, key=lambda part: part.split):
        digest.update(f"{part.filename}\0{part.bytes}\0{part.sha256}\n".encode())
    return digest.hexdigest()


def dataset_repo(user, repo_id: str, revision: str | None = None) -> Repo:
    """The dataset repository `repo_id`, if the caller may see it (members refused by their grant: Gated)."""
    family_slug, name = split_repo_id(repo_id)
    dataset = (OutputDataset.objects.select_related("model_size__family").filter(name=name).first())
    if dataset is None or not _in_family(dataset, family_slug):
        raise RepoNotFound(repo_id)
    try:
        access.require_dataset(access.may_dataset(user, dataset, access.DATASET_VIEW), dataset=dataset)
    except DatasetNotFound:
        raise RepoNotFound(repo_id) from None
    except AccessDenied as refusal:
        raise Gated(refusal.code, str(refusal.args[0]), authenticated=True) from None
    parts = list(dataset.splits.order_by("split"))
    commit = dataset_commit(parts)
    requested = _requested(revision)
    if requested is not None and requested != commit:
        raise UnknownRevision(revision)
    files = {part.filename: RepoFile(part.filename, part.bytes, part.sha256) for part in parts}
    return Repo(kind=DATASET, repo_id=f"{family_slug}/{dataset.name}", commit=commit, files=files,
                created_at=dataset.created_at, stage=dataset.stage, subject=dataset)


def _in_family(dataset: OutputDataset, family_slug: str) -> bool:
    if dataset.model_size is not None:
        return dataset.model_size.family.slug == family_slug
    return ModelFamily.objects.filter(slug=family_slug).exists()  # reference text: under every family


def repo_get(kind: str, user, repo_id: str, revision: str | None = None) -> Repo:
    return (model_repo if kind == MODEL else dataset_repo)(user, repo_id, revision)


# --------------------------------------------------------------------------- files
def file_get(repo: Repo, filename: str) -> RepoFile:
    file = repo.files.get(filename)
    if file is None:
        raise EntryNotFound(repo, filename)
    return file


def file_check(repo: Repo, *, user, filename: str) -> RepoFile:
    """The file, if the caller may download it now: what a HEAD answers, issuing nothing.

    An exhausted quota is refused here as Gated (`quota_exhausted`, with when the next link is allowed), not
    as the link's 429: the clients retry a 429 after its Retry-After, five times over, so a partner whose
    quota frees in an hour would wait five hours for an error. A refusal makes them report it at once."""
    file = file_get(repo, filename)
    if repo.kind == MODEL:
        decision = access.may(user, repo.subject, access.DOWNLOAD, revision=repo.revision, filename=filename)
        if decision.reason == access.QUOTA_EXHAUSTED:
            raise Gated(decision.reason, decision.detail, authenticated=True, retry_after_s=decision.retry_after_s)
    return file


def file_link(repo: Repo, *, user, filename: str, ip: str | None) -> str:
    """A fresh signed link to one file of `repo`: issued, counted against the grant's quota and audited as
    the API's own link endpoints do (a quota refusal is QuotaExhausted, 429)."""
    if repo.kind == MODEL:
        return links.link_issue(user=user, size=repo.subject, filename=filename, revision=repo.commit, ip=ip).url
    split = filename.removeprefix(f"{repo.subject.name}.").removesuffix(".jsonl")
    return dataset_links.dataset_link_issue(user=user, name=repo.subject.name, split=split, ip=ip).url
