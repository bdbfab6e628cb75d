"""The access rule: `may(user, size, action)` says whether someone may have a revision of a size's files, and
if not, why; `may_dataset` says the same of an output dataset, by the same rule.

Every API endpoint, admin view and portal page asks these; none repeats their logic. `visible_sizes` and
`visible_datasets` say what someone may know exists; `require` turns a refusal into its one HTTP answer.
"""

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from registry.datasets.errors import DatasetNotFound
from registry.errors import ModelSizeNotFound
from registry.models import ModelSize, OutputDataset, Revision
from releases.access import locks
from releases.access.errors import AccessDenied, AuthenticationRequired, QuotaExhausted
from releases.access.models import (
    AccessGrant,
    IssuedLink,
    PartnerMember,
    PartnerOrganisation,
    TermsAcceptance,
    TermsVersion,
)
from releases.roles import SEE_UNRELEASED, can
from releases.stage_names import Stage

# Actions
MANIFEST = "manifest"  # see the files of a revision with their checksums, to plan a download
DOWNLOAD = "download"  # get a signed link for one file (counts against a quota)
ACTIONS = (MANIFEST, DOWNLOAD)

# Reasons for a yes
STAFF, PUBLIC, GRANT = "staff", "public", "grant"
# Reasons for a no (machine-readable; the API returns them as `error`)
NOT_AUTHENTICATED = "not_authenticated"
NOT_A_PARTNER = "not_a_partner"
PARTNER_INACTIVE = "partner_inactive"
NO_GRANT = "no_grant"
GRANT_EXPIRED = "grant_expired"
GRANT_REVOKED = "grant_revoked"
GRANT_NOT_STARTED = "grant_not_started"
TERMS_NOT_ACCEPTED = "terms_not_accepted"
QUOTA_EXHAUSTED = "quota_exhausted"
STAGE_INTERNAL = "stage_internal"
WITHDRAWN = "withdrawn"
REFUSALS = (NOT_AUTHENTICATED, NOT_A_PARTNER, PARTNER_INACTIVE, NO_GRANT, GRANT_EXPIRED, GRANT_REVOKED,
            GRANT_NOT_STARTED, TERMS_NOT_ACCEPTED, QUOTA_EXHAUSTED, STAGE_INTERNAL, WITHDRAWN)

GRANT_ACTIVE = "active"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    detail: str
    grant: AccessGrant | None = None
    retry_after_s: int | None = None
    # Who the caller acts for and the terms they accepted: recorded with every issued link.
    partner: PartnerOrganisation | None = None
    terms: TermsVersion | None = None


@dataclass(frozen=True)
class QuotaUse:
    limit: int
    period_s: int
    used: int
    # Seconds until one more link is allowed (0 while some remain).
    retry_after_s: int

    @property
    def remaining(self) -> int:
        return max(self.limit - self.used, 0)


def sees_unreleased(user) -> bool:
    """Whether `user` may see and download sizes and datasets at every stage: policy staff and operators, by
    the permission their group grants. `is_staff` (admin entry) and superuser status grant nothing here."""
    return can(user, SEE_UNRELEASED)


def visible_sizes(user) -> QuerySet[ModelSize]:
    """The sizes `user` may know exist: every one for staff; for everyone else, those whose highest stage is
    past `internal` (a size's stage is the highest of its revisions').

    Every list, page, history and detail asks this (a size that is not visible answers 404, as no size does).
    """
    sizes = ModelSize.objects.all()
    return sizes if sees_unreleased(user) else sizes.exclude(stage=Stage.INTERNAL)


def visible_datasets(user) -> QuerySet[OutputDataset]:
    """The output datasets `user` may know exist: public ones; partners ones to members of an organisation whose
    grant for the dataset's size is in force; every one to staff, to decide on them."""
    datasets = OutputDataset.objects.all()
    if sees_unreleased(user):
        return datasets
    shown = Q(stage=Stage.PUBLIC)
    membership = membership_of(user)
    if membership is not None and membership.partner.active:
        granted = AccessGrant.objects.active(at=timezone.now()).filter(partner=membership.partner)
        shown |= Q(stage=Stage.PARTNERS, model_size__in=granted.values("model_size"))
    return datasets.filter(shown)


def membership_of(user) -> PartnerMember | None:
    """The user's current membership (with its organisation), if any."""
    if user is None or not user.is_authenticated:
        return None
    return PartnerMember.objects.current().select_related("partner").filter(user=user).first()


def grant_state(grant: AccessGrant, *, now: datetime | None = None) -> str:
    """`active`, or the refusal reason this grant alone would give (revoked beats expired beats not started)."""
    now = now or timezone.now()
    if grant.revoked_at is not None and grant.revoked_at <= now:
        return GRANT_REVOKED
    if grant.expires_at <= now:
        return GRANT_EXPIRED
    if grant.starts_at > now:
        return GRANT_NOT_STARTED
    return GRANT_ACTIVE


def terms_in_force(*, now: datetime | None = None) -> TermsVersion | None:
    return TermsVersion.objects.filter(published_at__lte=now or timezone.now()).order_by("-published_at", "-id").first()


def quota_use(grant: AccessGrant, filename: str, *, now: datetime | None = None) -> QuotaUse | None:
    """How much of the grant's per-file quota the window ending now has used; None without a quota."""
    if not grant.has_quota:
        return None
    now = now or timezone.now()
    period = timedelta(seconds=grant.quota_period_s)
    issued = list(
        IssuedLink.objects.filter(grant=grant, filename=filename, issued_at__gt=now - period)
        .order_by("issued_at").values_list("issued_at", flat=True)
    )
    retry = 0
    if len(issued) >= grant.quota_links:
        # One more link is allowed once enough of the window's links have aged out of it.
        frees_at = issued[len(issued) - grant.quota_links] + period
        retry = max(1, math.ceil((frees_at - now).total_seconds()))
    return QuotaUse(limit=grant.quota_links, period_s=grant.quota_period_s, used=len(issued), retry_after_s=retry)


def _no(reason: str, detail: str, **extra) -> Decision:
    return Decision(False, reason, detail, **extra)


def _portal() -> str:
    return f"{settings.SITE_URL}/portal/"


def may(user, size: ModelSize, action: str, *, revision: Revision | None = None, filename: str | None = None,
        now: datetime | None = None, lock: bool = False) -> Decision:
    """May `user` (possibly anonymous) have `revision` of `size` (default: its newest revision) for `action`
    (MANIFEST, or DOWNLOAD of `filename`)?

    - Staff — users whose role grants releases.see_unreleased (policy staff, operators) — may always, at every
      stage (internal and withdrawn included: they decide about these). `is_staff` and superuser status
      grant nothing here.
    - Everyone else, by the revision's stage: `internal` is refused as `stage_internal` (endpoints answer 404,
      so its existence is not revealed), `withdrawn` as `withdrawn`, and `public` needs no account. A `partners`
      revision needs an account that is a current member of an active partner organisation holding a grant
      for the size that has started, not expired and not been revoked, the terms of use in force accepted,
      and, for a DOWNLOAD of a file under a quota, a link left in the quota's window.

    lock=True (inside a transaction) share-locks the caller's membership and the partner's grant rows for the
    size first (releases/access/locks.py): a revocation that committed before this call is seen, one that comes
    later waits until the caller's transaction ends, and concurrent links on a grant with a quota are counted
    one after the other.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    authenticated = user is not None and user.is_authenticated
    if lock:
        locks.access_rows_share(user if authenticated else None, size)
    # Read after any lock wait: a revocation that committed during the wait is stamped later than a clock
    # read before it. (Revocations are stamped with the moment they are made.)
    now = now or timezone.now()
    if authenticated and sees_unreleased(user):
        return Decision(True, STAFF, "Staff may download every size at every stage.")
    stage = _stage_now(size, revision)
    slug = size.slug
    if stage == Stage.INTERNAL:
        return _no(STAGE_INTERNAL, f"No model size {slug!r}.")
    if stage == Stage.WITHDRAWN:
        return _no(WITHDRAWN, f"{slug} has been withdrawn: no new download links are issued for it.")
    if stage == Stage.PUBLIC:
        return Decision(True, PUBLIC, f"{slug} is public: anyone may download it.")
    return _as_partner(user if authenticated else None, size, action=action, filename=filename, now=now, lock=lock)


def _stage_now(size: ModelSize, revision: Revision | None) -> str:
    """The stage as the database has it now, whatever the caller's copy says (a link reads it twice)."""
    revisions = Revision.objects.filter(pk=revision.pk) if revision is not None else size.revisions
    # Ordered by number only: the model's default ordering would join the size and its family on every link.
    stage = revisions.order_by("-number").values_list("stage", flat=True).first()
    if stage is None:
        raise ModelSizeNotFound(f"No model size {size.slug!r}.")  # deleted meanwhile, or never given files
    return stage


def _as_partner(user, size: ModelSize, *, action: str, filename: str | None, now: datetime, lock: bool) -> Decision:
    """The partners stage: a current member of an active organisation with a grant in force and the terms."""
    slug = size.slug
    if user is None:
        return _no(NOT_AUTHENTICATED, f"{slug} is available to partners holding a grant; send "
                                      "`Authorization: Token <key>` (create a token in the partner portal).")
    membership = membership_of(user)
    if membership is None:
        return _no(NOT_A_PARTNER, f"{slug} is available only to members of partner organisations holding a "
                                  "grant for it; your account belongs to no partner organisation.")
    partner = membership.partner
    if not partner.active:
        return _no(PARTNER_INACTIVE, f"{partner.name} is not an active partner organisation; its grants open "
                                     "nothing until staff reactivate it.", partner=partner)
    grants = list(AccessGrant.objects.filter(partner=partner, model_size=size).order_by("-created_at", "-id"))
    active = [grant for grant in grants if grant_state(grant, now=now) == GRANT_ACTIVE]
    if not active:
        return _refuse_for_grants(grants, partner=partner, slug=slug, now=now)
    grant = active[0]
    terms = terms_in_force(now=now)
    if terms is None:
        return _no(TERMS_NOT_ACCEPTED, "No partner terms of use are in force yet, so no partner links can be "
                                       "issued; ask policy staff to publish them.", grant=grant, partner=partner)
    if not TermsAcceptance.objects.filter(terms=terms, user=user).exists():
        return _no(TERMS_NOT_ACCEPTED, f"Accept the partner terms of use {terms.version} in the portal "
                                       f"({_portal()}) before downloading.", grant=grant, partner=partner)
    if action == DOWNLOAD and filename is not None:
        if lock and grant.has_quota:
            locks.quota_lock(grant)
        use = quota_use(grant, filename, now=now)
        if use is not None and use.remaining == 0:
            return _no(QUOTA_EXHAUSTED, f"Your grant allows {use.limit} link(s) per file every {use.period_s} s "
                                        f"and {filename} has used them; the next is allowed in "
                                        f"{use.retry_after_s} s.", grant=grant, partner=partner, terms=terms,
                       retry_after_s=use.retry_after_s)
    return Decision(True, GRANT, f"Grant #{grant.pk} of {partner.name} for {slug}, until "
                                 f"{grant.expires_at.isoformat()}.", grant=grant, partner=partner, terms=terms)


def _refuse_for_grants(grants: list[AccessGrant], *, partner: PartnerOrganisation, slug: str,
                       now: datetime) -> Decision:
    if not grants:
        return _no(NO_GRANT, f"{partner.name} holds no grant for {slug}; request access in the portal "
                             f"({_portal()}).", partner=partner)
    # A grant still to come says most about what happens next; otherwise the latest grant speaks.
    upcoming = [grant for grant in grants if grant_state(grant, now=now) == GRANT_NOT_STARTED]
    grant = min(upcoming, key=lambda g: g.starts_at) if upcoming else grants[0]
    state = grant_state(grant, now=now)
    if state == GRANT_NOT_STARTED:
        return _no(state, f"{partner.name}'s grant for {slug} starts at {grant.starts_at.isoformat()}.",
                   grant=grant, partner=partner)
    if state == GRANT_REVOKED:
        return _no(state, f"{partner.name}'s grant for {slug} was revoked at {grant.revoked_at.isoformat()}: "
                          f"{grant.revoke_reason}", grant=grant, partner=partner)
    return _no(state, f"{partner.name}'s grant for {slug} expired at {grant.expires_at.isoformat()}; "
                      "ask policy staff to renew it.", grant=grant, partner=partner)


def require(decision: Decision, *, size: ModelSize) -> Decision:
    """The allowed decision, or the one error (and HTTP status) for its reason."""
    if decision.allowed:
        return decision
    if decision.reason == STAGE_INTERNAL:
        raise ModelSizeNotFound(f"No model size {size.slug!r}.")  # the same answer as for no size at all
    if decision.reason == NOT_AUTHENTICATED:
        raise AuthenticationRequired(decision.detail)
    if decision.reason == QUOTA_EXHAUSTED:
        raise QuotaExhausted(decision.detail, retry_after_s=decision.retry_after_s)
    raise AccessDenied(decision.detail, code=decision.reason)


# --------------------------------------------------------------------------- output datasets
# A dataset is a release subject of its own, moved through the same stages by the same requests and approvals
# (releases/stages.py); its stage does not follow its size's.
DATASET_VIEW = "view"  # see the dataset, its statistics and checksums
DATASET_DOWNLOAD = "download"  # get a signed link to one split
DATASET_ACTIONS = (DATASET_VIEW, DATASET_DOWNLOAD)
# Refusals a partner member is told as such; anyone else is refused as if the dataset did not exist.
_MEMBER_REFUSALS = (PARTNER_INACTIVE, NO_GRANT, GRANT_EXPIRED, GRANT_REVOKED, GRANT_NOT_STARTED, TERMS_NOT_ACCEPTED)


def may_dataset(user, dataset: OutputDataset, action: str, *, now: datetime | None = None) -> Decision:
    """May `user` (possibly anonymous) see or download `dataset`? By its stage, as for a revision: public,
    anyone; partners, a member with a grant in force for the dataset's size and the terms accepted; internal
    and withdrawn, staff only."""
    if action not in DATASET_ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    if sees_unreleased(user):
        return Decision(True, STAFF, f"{dataset.name} is {dataset.stage}; staff may see it.")
    stage = OutputDataset.objects.filter(pk=dataset.pk).values_list("stage", flat=True).first()
    if stage == Stage.PUBLIC:
        return Decision(True, PUBLIC, f"{dataset.name} is public: anyone may download it.")
    if stage == Stage.PARTNERS and dataset.model_size_id is not None:
        authenticated = user is not None and user.is_authenticated
        return _as_partner(user if authenticated else None, dataset.model_size, action=MANIFEST, filename=None,
                           now=now or timezone.now(), lock=False)
    return _no(STAGE_INTERNAL, f"No dataset {dataset.name!r}.")


def require_dataset(decision: Decision, *, dataset) -> Decision:
    """The allowed decision; a member's refusal with its reason (403); otherwise 404, the same answer as for no
    dataset at all."""
    if decision.allowed:
        return decision
    if decision.reason in _MEMBER_REFUSALS:
        raise AccessDenied(decision.detail, code=decision.reason)
    raise DatasetNotFound(f"No dataset {dataset.name!r}.")
