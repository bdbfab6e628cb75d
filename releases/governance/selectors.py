"""Reads of release governance: requests, stage history, reviews due, and the stage of a size on a date."""

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from registry.models import ModelSize
from releases.access.models import AccessGrant
from releases.governance.errors import StageRequestNotFound
from releases.models import StageChange, StageChangeRequest, StageDecision
from releases.stage_names import Stage

Status = StageChangeRequest.Status


def stage_request_list(*, status: str | None = None, size: ModelSize | None = None) -> QuerySet[StageChangeRequest]:
    requests = (
        StageChangeRequest.objects.select_related("model_size", "requested_by")
        .prefetch_related("decisions__decided_by")
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
    """Applied changes, oldest first, with what the public may read of each."""
    return (
        StageChange.objects.filter(model_size=size)
        .select_related("request", "applied_by")
        .order_by("applied_at", "id")
    )


# --------------------------------------------------------------------------- reviews and the dashboard
def current_changes() -> QuerySet[StageChange]:
    """The latest applied change of each size: the stage it is in now and when that is to be reviewed."""
    later = StageChange.objects.filter(model_size=OuterRef("model_size")).filter(
        Q(applied_at__gt=OuterRef("applied_at")) | Q(applied_at=OuterRef("applied_at"), id__gt=OuterRef("id"))
    )
    return StageChange.objects.filter(~Exists(later)).select_related("model_size__family")


def reviews_due(*, today: date | None = None) -> QuerySet[StageChange]:
    """Current stages whose review is overdue or due within STAGEGATE_REVIEW_DUE_SOON_DAYS."""
    today = today or timezone.localdate()
    window = today + timedelta(days=int(getattr(settings, "STAGEGATE_REVIEW_DUE_SOON_DAYS", 14)))
    return current_changes().filter(review_by__lte=window).order_by("review_by", "id")


@dataclass
class Dashboard:
    pending: list[StageChangeRequest]
    embargoed: list[StageChangeRequest]
    overdue_reviews: list[StageChange]
    reviews_due_soon: list[StageChange]


def governance_dashboard(*, now: datetime | None = None) -> Dashboard:
    now = now or timezone.now()
    today = timezone.localdate(now)
    due = list(reviews_due(today=today))
    return Dashboard(
        pending=list(stage_request_list(status=Status.PENDING).order_by("created_at", "id")),
        embargoed=list(stage_request_list(status=Status.APPROVED).order_by("effective_at", "id")),
        overdue_reviews=[change for change in due if change.review_by < today],
        reviews_due_soon=[change for change in due if change.review_by >= today],
    )


# --------------------------------------------------------------------------- the past
def stage_on(*, size: ModelSize, when: datetime) -> Stage:
    """The stage the size was in at `when`, from its applied changes."""
    changes = StageChange.objects.filter(model_size=size)
    latest = changes.filter(applied_at__lte=when).order_by("-applied_at", "-id").first()
    if latest is not None:
        return Stage(latest.to_stage)
    first = changes.order_by("applied_at", "id").first()
    # Before its first change a size was in that change's from-stage; never changed: still where it began.
    return Stage(first.from_stage) if first is not None else Stage(size.stage)


@dataclass
class DownloadAudience:
    stage: Stage
    audience: str  # "everyone" | "partners_with_grants" | "staff_only"
    description: str
    # Partner organisations with an active grant at that time (only for the partners stage).
    grantees: list[str] | None = field(default=None)


def who_could_download(*, size: ModelSize, when: datetime) -> DownloadAudience:
    stage = stage_on(size=size, when=when)
    if stage == Stage.PUBLIC:
        return DownloadAudience(stage, "everyone", "Anyone could download it.")
    if stage == Stage.PARTNERS:
        return DownloadAudience(stage, "partners_with_grants", "Partners holding an active grant for it.",
                                grantees=_grantees_on(size=size, when=when))
    return DownloadAudience(stage, "staff_only", "Staff only.")


def _grantees_on(*, size: ModelSize, when: datetime) -> list[str]:
    """The partner organisations whose grant for `size` was active at `when` (started, not expired, not
    yet revoked), by name."""
    grants = AccessGrant.objects.active(at=when).filter(model_size=size)
    return sorted(set(grants.values_list("partner__name", flat=True)))


@dataclass
class SizeOnDate:
    size: ModelSize
    stage: Stage
    download: DownloadAudience


def release_state_on(*, when: datetime) -> list[SizeOnDate]:
    """What stage was each size in, and who could download it, at `when` (sizes created later included
    when their recorded history reaches back, as GPT-2's does)."""
    rows = []
    for size in ModelSize.objects.select_related("family").order_by("family__name", "order", "slug"):
        download = who_could_download(size=size, when=when)
        rows.append(SizeOnDate(size=size, stage=download.stage, download=download))
    return rows
