"""Signed download links: issuing one (checked by `may`, recorded, audited) and the manifest a client plans with,
for one revision of a size's files: the one asked for, or the newest the caller may have.

No weight bytes pass through Django: a link is a SigV4-presigned GET straight to object storage, valid for
STAGEGATE_LINK_TTL_S (at most an hour). Renewal is asking again while access holds. Revoking a grant or
withdrawing a size stops new links at once; links already issued keep working until they expire.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from registry import storage
from registry.errors import ArtifactNotFound, ModelSizeNotFound, RevisionNotFound
from registry.filenames import validate_filename
from registry.models import Artifact, ModelSize, Revision
from registry.revisions import revision_get
from releases.access import rules as access
from releases.audit.chain import audit_record
from releases.models import IssuedLink

DEFAULT_LINK_TTL_S = 10 * 60
# A HEAD per link cost more than the rest of the link (bench/README.md), and links go to the same few files
# many times a second; with checks a second apart, an outage is answered with 503 a second late at most.
DEFAULT_STORAGE_CHECK_WINDOW_MS = 1000


def link_ttl_s() -> int:
    """The configured lifetime, clamped to 1 s … storage.LINK_TTL_MAX_S (an hour)."""
    configured = int(getattr(settings, "STAGEGATE_LINK_TTL_S", DEFAULT_LINK_TTL_S))
    return min(max(configured, 1), storage.LINK_TTL_MAX_S)


def storage_check_window_s() -> float:
    """How long one successful storage check of a file vouches for it in this process (0: check every link)."""
    configured = int(getattr(settings, "STAGEGATE_STORAGE_CHECK_WINDOW_MS", DEFAULT_STORAGE_CHECK_WINDOW_MS))
    return max(configured, 0) / 1000


def size_by_slug(*, slug: str) -> ModelSize:
    """Any size, whatever its stage: callers must pass it through `access.may` before showing anything."""
    # get(), not first(): first() orders by the size's ordering, which costs a join on every link.
    try:
        return ModelSize.objects.select_related("family").get(slug=slug)
    except ModelSize.DoesNotExist:
        raise ModelSizeNotFound(f"No model size {slug!r}.") from None


def filename_is_plain(filename: str) -> bool:
    try:
        validate_filename(filename)
    except ValidationError:
        return False
    return True


def revision_for(user, size: ModelSize, requested: str | None = None) -> tuple[Revision, access.Decision]:
    """The revision to serve and what `may` says of it: the `requested` one (404 if unknown or hidden from the
    caller), else the newest the caller may have; if they may have none, the newest they may know of, whose
    refusal says why (and 404 when every revision is internal to them)."""
    if requested is not None:
        revision = revision_get(size, requested)
        decision = access.may(user, size, access.MANIFEST, revision=revision)
        if decision.reason == access.STAGE_INTERNAL:
            raise RevisionNotFound(f"{size.slug} has no revision {requested!r}.")
        return revision, decision
    refused = None
    for revision in size.revisions.order_by("-number"):
        decision = access.may(user, size, access.MANIFEST, revision=revision)
        if decision.allowed:
            return revision, decision
        if refused is None and decision.reason != access.STAGE_INTERNAL:
            refused = revision, decision
    if refused is not None:
        return refused
    raise ModelSizeNotFound(f"No model size {size.slug!r}.")


def revisions_for(user, size: ModelSize) -> list[tuple[Revision, access.Decision]]:
    """The size's revisions the caller may download (staff: every one), newest first, with `may`'s answer."""
    answers = [(revision, access.may(user, size, access.MANIFEST, revision=revision))
               for revision in size.revisions.select_related("parent", "training_run").order_by("-number")]
    return [(revision, decision) for revision, decision in answers if decision.allowed]


@dataclass(frozen=True)
class Link:
    record: IssuedLink
    url: str  # handed to the caller only; never stored or logged

    @property
    def expires_at(self) -> datetime:
        return self.record.expires_at


def link_issue(*, user, size: ModelSize, filename: str, revision: str | None = None,
               ip: str | None = None) -> Link:
    """A fresh signed link to one file of a revision (`revision_for`), if `may` allows; an IssuedLink row and an
    audit row, both naming the revision.

    Order matters. `may` is asked first, without locks (choosing the revision), so a caller who may not have
    it never makes the platform contact storage (no timing tells them which files exist, none can tie up a
    worker on a slow store). Storage is asked next, and the link signed, before any lock is taken, so no lock
    waits on the network. Then, in one transaction, `may` is asked for the download with the grant rows
    share-locked (and the file's quota counted): a
    revocation committed meanwhile is seen, one committed later waits for this link, and concurrent links
    on a grant with a quota are counted one after the other. With storage unreachable the caller gets 503
    and nothing is recorded, from at most STAGEGATE_STORAGE_CHECK_WINDOW_MS (1 s) after the outage began: a
    successful check vouches for the file that long in this process.
    """
    chosen, decision = revision_for(user, size, revision)
    access.require(decision, size=size)
    artifact = None
    if filename_is_plain(filename):  # a hostile name never reaches a query (PostgreSQL: NUL → 500) or a key
        artifact = Artifact.objects.filter(revision=chosen, filename=filename).select_related("revision") \
            .order_by().first()
    if artifact is None:
        raise ArtifactNotFound(f"{chosen} has no file named {filename!r}.")
    # StorageUnavailable (503) / ObjectMissing (404) before any write
    storage.head_recent(artifact.s3_key, within_s=storage_check_window_s())
    ttl_s = link_ttl_s()
    url = storage.presign_get(artifact.s3_key, ttl_s=ttl_s, download_name=artifact.filename)
    with transaction.atomic():
        # `may` reads the size's stage afresh: a withdrawal committed meanwhile is seen.
        decision = access.require(access.may(user, size, access.DOWNLOAD, revision=chosen, filename=filename,
                                             lock=True), size=size)
        record = _record(user=user, size=size, artifact=artifact, decision=decision, ttl_s=ttl_s, ip=ip)
    return Link(record=record, url=url)


def _record(*, user, size: ModelSize, artifact: Artifact, decision: access.Decision, ttl_s: int,
            ip: str | None) -> IssuedLink:
    # The link is valid from its signing, a moment before this row: the recorded expiry errs late, never early.
    now = timezone.now()
    authenticated = user is not None and user.is_authenticated
    record = IssuedLink.objects.create(
        issued_at=now, expires_at=now + timedelta(seconds=ttl_s), user=user if authenticated else None,
        partner=decision.partner, grant=decision.grant, terms=decision.terms, model_size=size,
        revision=artifact.revision, artifact=artifact,
        filename=artifact.filename, bytes=artifact.bytes, sha256=artifact.sha256, basis=decision.reason, ip=ip,
    )
    audit_record(
        actor=user if authenticated else None, action="link.issued", target=size, ip=ip,
        data={
            "link_id": record.pk, "file": artifact.filename, "revision": artifact.revision.revision,
            "sha256": artifact.sha256, "basis": decision.reason,
            "partner": decision.partner.name if decision.partner else None,
            "grant_id": decision.grant.pk if decision.grant else None,
            "terms_version": decision.terms.version if decision.terms else None,
            "expires_at": record.expires_at.isoformat(), "anonymous": not authenticated,
        },
    )
    return record


# --------------------------------------------------------------------------- the manifest
@dataclass(frozen=True)
class ManifestFile:
    artifact: Artifact
    quota: access.QuotaUse | None


@dataclass(frozen=True)
class Manifest:
    size: ModelSize
    revision: Revision
    decision: access.Decision
    files: list[ManifestFile]
    link_ttl_s: int


def manifest_get(*, user, size: ModelSize, revision: str | None = None) -> Manifest:
    """A revision's files (`revision_for`) with bytes and sha256, its stage and the caller's grant (with quota
    use per file)."""
    chosen, decision = revision_for(user, size, revision)
    access.require(decision, size=size)
    now = timezone.now()
    files = [
        ManifestFile(artifact=artifact,
                     quota=access.quota_use(decision.grant, artifact.filename, now=now) if decision.grant else None)
        for artifact in chosen.artifacts.order_by("filename")
    ]
    return Manifest(size=size, revision=chosen, decision=decision, files=files, link_ttl_s=link_ttl_s())
