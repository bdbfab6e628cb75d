"""Reads of release governance: requests, stage history, reviews due, and the stage of a size on a date."""

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from registry.models import DataRemovalRequest, ModelSize, OutputDataset, Revision
from releases import stages
from releases.access.models import (
    AccessGrant,
    AccessRequest,
    PartnerActivity,
    PartnerApplication,
    PartnerMember,
    TermsAcceptance,
    TermsVersion,
)
from releases.access.renewals import RENEWAL_WINDOW
from releases.governance.errors import StageRequestNotFound
from releases.models import StageChange, StageChangeRequest, StageDecision, StageReview
from releases.stage_names import Stage

Status = StageChangeRequest.Status


def stage_request_list(*, status: str | None = None, size: ModelSize | None = None) -> QuerySet[StageChangeRequest]:
    requests = (
        StageChangeRequest.objects.select_related("model_size", "revision", "dataset", "requested_by")
        .prefetch_related("decisions__decided_by", "comments__author")
        .annotate(approval_count=Count("decisions", filter=Q(decisions__verdict=StageDecision.Verdict.APPROVE)))
    )
    if status:
        requests = requests.filter(status=status)
    if size is not None:
        requests = requests.filter(model_size=size)
    return requests.order_by("-created_at", "-id")


def stage_request_get(*, request_id: int) -> StageChangeRequest:
    request = stage_request_list().filter(pk=request_id).first()
    if request is None:
        raise StageRequestNotFound(f"No stage-change request #{request_id}.")
    return request


def model_size_for_staff(*, slug: str) -> ModelSize:
    """Any size, internal ones included: only for callers already checked to be policy staff."""
    from registry.errors import ModelSizeNotFound

    size = ModelSize.objects.select_related("family").filter(slug=slug).first()
    if size is None:
        raise ModelSizeNotFound(f"No model size {slug!r}.")
    return size


def stage_history(*, size: ModelSize) -> QuerySet[StageChange]:
    """The applied changes of the size's revisions (and of the size as a whole), oldest first, with what the
    public may read of each; its datasets' changes are theirs."""
    return (
        StageChange.objects.filter(model_size=size, dataset=None)
        .select_related("request", "applied_by", "revision")
        .order_by("applied_at", "id")
    )


# --------------------------------------------------------------------------- reviews and the dashboard
def current_changes() -> QuerySet[StageChange]:
    """The latest applied change of each size's revisions: the stage it is in now and when that is to be
    reviewed (datasets' changes apart)."""
    later = StageChange.objects.filter(model_size=OuterRef("model_size"), dataset=None).filter(
        Q(applied_at__gt=OuterRef("applied_at")) | Q(applied_at=OuterRef("applied_at"), id__gt=OuterRef("id"))
    )
    return StageChange.objects.filter(~Exists(later), dataset=None, model_size__isnull=False).select_related(
        "model_size__family", "revision")


def stage_reviews(*, size: ModelSize) -> list[StageReview]:
    """The size's stage reviews, newest first, with who reviewed."""
    return list(StageReview.objects.filter(change__model_size=size).select_related("reviewed_by", "change")
                .order_by("-created_at", "-id"))


def reviews_due(*, today: date | None = None) -> QuerySet[StageChange]:
    """Current stages whose review is overdue or due within STAGEGATE_REVIEW_DUE_SOON_DAYS.

    A change recorded from history (GPT-2's 2019 releases) was not decided here: it is not due for review
    until staff review it once, which puts it on the schedule like any other."""
    today = today or timezone.localdate()
    window = today + timedelta(days=int(getattr(settings, "STAGEGATE_REVIEW_DUE_SOON_DAYS", 14)))
    return (current_changes().filter(review_by__lte=window)
            .exclude(request__historical=True, last_reviewed_at__isnull=True).order_by("review_by", "id"))


@dataclass
class Dashboard:
    pending: list[StageChangeRequest]
    embargoed: list[StageChangeRequest]
    overdue_reviews: list[StageChange]
    reviews_due_soon: list[StageChange]
    # What else waits on policy staff: partners' requests, people's data-removal requests, grants ending soon.
    access_requests: list = field(default_factory=list)
    removal_requests: list = field(default_factory=list)
    grants_expiring: list = field(default_factory=list)
    partner_applications: list = field(default_factory=list)


GRANTS_EXPIRING_WITHIN = RENEWAL_WINDOW  # the grants whose organisations are told, and may ask to renew


def governance_dashboard(*, now: datetime | None = None) -> Dashboard:
    now = now or timezone.now()
    today = timezone.localdate(now)
    due = list(reviews_due(today=today))
    return Dashboard(
        pending=list(stage_request_list(status=Status.PENDING).order_by("created_at", "id")),
        embargoed=list(stage_request_list(status=Status.APPROVED).order_by("effective_at", "id")),
        overdue_reviews=[change for change in due if change.review_by < today],
        reviews_due_soon=[change for change in due if change.review_by >= today],
        access_requests=list(AccessRequest.objects.filter(status=AccessRequest.Status.PENDING)
                             .select_related("partner", "model_size").order_by("created_at", "id")),
        removal_requests=list(DataRemovalRequest.objects.filter(status=DataRemovalRequest.Status.OPEN)
                              .select_related("dataset").order_by("created_at", "id")),
        partner_applications=list(PartnerApplication.objects.filter(status=PartnerApplication.Status.PENDING)
                                  .select_related("applicant").order_by("created_at", "id")),
        grants_expiring=list(AccessGrant.objects.active(at=now).filter(expires_at__lte=now + GRANTS_EXPIRING_WITHIN)
                             .select_related("partner", "model_size").order_by("expires_at", "id")),
    )


# --------------------------------------------------------------------------- the past
# "Who could get what on date X", from the records that keep their times: applied stage changes, grants (start,
# expiry, revocation), partners' activity, memberships (joined, left) and terms acceptances.
def _changes_of_revision(revision: Revision) -> QuerySet[StageChange]:
    """Changes that moved the revision: its own, and withdrawals of its whole size."""
    return StageChange.objects.filter(
        Q(revision=revision) | Q(model_size=revision.model_size_id, revision=None, dataset=None))


def _stage_from(changes: QuerySet[StageChange], *, when: datetime, now_stage: str) -> Stage:
    latest = changes.filter(applied_at__lte=when).order_by("-applied_at", "-id").first()
    if latest is not None:
        return Stage(latest.to_stage)
    first = changes.order_by("applied_at", "id").first()
    # Before its first change a subject was in that change's from-stage; never changed: still where it began.
    return Stage(first.from_stage) if first is not None else Stage(now_stage)


def revision_stage_on(*, revision: Revision, when: datetime) -> Stage:
    return _stage_from(_changes_of_revision(revision), when=when, now_stage=revision.stage)


def dataset_stage_on(*, dataset: OutputDataset, when: datetime) -> Stage:
    return _stage_from(StageChange.objects.filter(dataset=dataset), when=when, now_stage=dataset.stage)


def stage_on(*, size: ModelSize, when: datetime) -> Stage:
    """The size's stage at `when`: the highest its revisions held then."""
    held = [revision_stage_on(revision=revision, when=when) for revision in _revisions_then(size, when)]
    return stages.highest(held) if held else Stage.INTERNAL


def _revisions_then(size: ModelSize, when: datetime) -> list[Revision]:
    """The size's revisions that existed at `when` (made by then, or with recorded history reaching back)."""
    back = StageChange.objects.filter(revision=OuterRef("pk"), applied_at__lte=when)
    return list(size.revisions.filter(Q(created_at__lte=when) | Exists(back)).order_by("number"))


@dataclass
class MemberOnDate:
    username: str
    terms_version: str | None  # the terms in force then, if this member had accepted them by then


@dataclass
class OrganisationOnDate:
    name: str
    grant_id: int
    members: list[MemberOnDate]


@dataclass
class DownloadAudience:
    stage: Stage
    audience: str  # "everyone" | "partners_with_grants" | "staff_only"
    description: str
    # For the partners stage: organisations with a grant in force then, their members then and their terms.
    organisations: list[OrganisationOnDate] | None = field(default=None)

    @property
    def grantees(self) -> list[str] | None:
        return None if self.organisations is None else sorted({o.name for o in self.organisations})


def _audience(stage: Stage, *, size: ModelSize | None, when: datetime) -> DownloadAudience:
    if stage == Stage.PUBLIC:
        return DownloadAudience(stage, "everyone", "Anyone could download it.")
    if stage == Stage.PARTNERS and size is not None:
        return DownloadAudience(stage, "partners_with_grants", "Partners holding an active grant for it.",
                                organisations=organisations_on(size=size, when=when))
    return DownloadAudience(stage, "staff_only", "Staff only.")


def organisations_on(*, size: ModelSize, when: datetime) -> list[OrganisationOnDate]:
    """The organisations active at `when` whose grant for `size` was in force then, each with its members then
    and, for each, the terms version in force then if they had accepted it by then."""
    terms = TermsVersion.objects.filter(published_at__lte=when).order_by("-published_at", "-id").first()
    organisations = []
    for grant in AccessGrant.objects.active(at=when).filter(model_size=size).select_related("partner"):
        activity = PartnerActivity.objects.filter(partner=grant.partner, at__lte=when).order_by("-at", "-id").first()
        if activity is None or not activity.active:
            continue
        members = []
        for member in PartnerMember.objects.at(when).filter(partner=grant.partner).select_related("user"):
            accepted = terms is not None and TermsAcceptance.objects.filter(
                terms=terms, user=member.user, accepted_at__lte=when).exists()
            members.append(MemberOnDate(member.user.get_username(), terms.version if accepted else None))
        organisations.append(OrganisationOnDate(grant.partner.name, grant.pk,
                                                sorted(members, key=lambda m: m.username)))
    return sorted(organisations, key=lambda o: (o.name, o.grant_id))


def who_could_download(*, size: ModelSize, when: datetime) -> DownloadAudience:
    return _audience(stage_on(size=size, when=when), size=size, when=when)


@dataclass
class SizeOnDate:
    size: ModelSize
    stage: Stage
    download: DownloadAudience


@dataclass
class RevisionOnDate:
    revision: Revision
    stage: Stage
    download: DownloadAudience


@dataclass
class DatasetOnDate:
    dataset: OutputDataset
    stage: Stage
    download: DownloadAudience


@dataclass
class ReleaseState:
    sizes: list[SizeOnDate]
    revisions: list[RevisionOnDate]
    datasets: list[DatasetOnDate]


def release_state_on(*, when: datetime) -> ReleaseState:
    """Every size, revision and dataset at `when`: its stage then and who could download it then (subjects made
    later are included when their recorded history reaches back, as GPT-2's does)."""
    sizes, revisions = [], []
    for size in ModelSize.objects.select_related("family").order_by("family__name", "order", "slug"):
        for revision in _revisions_then(size, when):
            stage = revision_stage_on(revision=revision, when=when)
            revisions.append(RevisionOnDate(revision, stage, _audience(stage, size=size, when=when)))
        download = who_could_download(size=size, when=when)
        sizes.append(SizeOnDate(size=size, stage=download.stage, download=download))
    datasets = []
    made_then = Q(created_at__lte=when) | Exists(StageChange.objects.filter(dataset=OuterRef("pk"), applied_at__lte=when))
    for dataset in OutputDataset.objects.filter(made_then).select_related("model_size", "revision").order_by("name"):
        stage = dataset_stage_on(dataset=dataset, when=when)
        datasets.append(DatasetOnDate(dataset, stage, _audience(stage, size=dataset.model_size, when=when)))
    return ReleaseState(sizes=sizes, revisions=revisions, datasets=datasets)
