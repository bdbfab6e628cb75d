"""The access rule: `may(user, size, action)` says whether someone may have a size's files, and if not, why.

Every API endpoint, admin view and portal page asks this one function; none repeats its logic.
`require` turns a refusal into the one HTTP answer for its reason.
"""

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Exists, OuterRef
from django.utils import timezone

from registry.errors import ModelSizeNotFound
from registry.models import ModelSize
from releases.errors import AccessDenied, AuthenticationRequired, QuotaExhausted
from releases.models import (
    AccessGrant,
    IssuedLink,
    PartnerMember,
    PartnerOrganisation,
    TermsAcceptance,
    TermsVersion,
)
from releases.roles import is_policy_staff
from releases.stages import Stage

# Actions
MANIFEST = "manifest"  # see the files of a size with their checksums, to plan a download
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


def is_staff(user) -> bool:
    return bool(user is not None and user.is_authenticated and (user.is_staff or is_policy_staff(user)))


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


def may(user, size: ModelSize, action: str, *, filename: str | None = None, now: datetime | None = None,
        lock: bool = False) -> Decision:
    """May `user` (possibly anonymous) have `size`'s files for `action` (MANIFEST or DOWNLOAD of `filename`)?

    - Staff — members of the policy-staff group and users with `is_staff` — may always, at every stage
      (internal and withdrawn included: they decide about these sizes). Superusers get nothing beyond is_staff.
    - Everyone else: an `internal` size is refused as `stage_internal` (endpoints answer 404, so its
      existence is not revealed) and a `withdrawn` one as `withdrawn`; a `public` size needs no grant and
      no account. A `partners` size needs an account that is a member of an active partner organisation
      holding a grant for the size that has started, not expired and not been revoked, the terms of use in
      force accepted, and, for a DOWNLOAD of a file under a quota, a link left in the quota's window.

    lock=True (inside a transaction) reads the partner's grant rows for the size under a share lock first
    (see `_grants`): a revocation that committed before this call is seen, one that comes later waits until
    the caller's transaction ends, and concurrent links on a grant with a quota are counted one after the
    other (`_lock_quota`).
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    decide_after_locks = lock and now is None
    now = now or timezone.now()
    if is_staff(user):
        return Decision(True, STAFF, "Staff may download every size at every stage.")
    slug = size.slug
    if size.stage == Stage.INTERNAL:
        return _no(STAGE_INTERNAL, f"No model size {slug!r}.")
    if size.stage == Stage.WITHDRAWN:
        return _no(WITHDRAWN, f"{slug} has been withdrawn: no new download links are issued for it.")
    if size.stage == Stage.PUBLIC:
        return Decision(True, PUBLIC, f"{slug} is public: anyone may download it.")
    # The partners stage.
    if user is None or not user.is_authenticated:
        return _no(NOT_AUTHENTICATED, f"{slug} is available to partners holding a grant; send "
                                      "`Authorization: Token <key>` (create a token in the partner portal).")
    grants = _grants(user, size, lock=lock)
    if decide_after_locks:
        # A revocation that committed while this waited for the locks is stamped later than a `now` read
        # before the wait: decide as of now. (Revocations are stamped with the moment they are made.)
        now = timezone.now()
    # A user belongs to at most one partner: every grant found is that partner's.
    partner = grants[0].partner if grants else _partner_of(user)
    if partner is None:
        return _no(NOT_A_PARTNER, f"{slug} is available only to members of partner organisations holding a "
                                  "grant for it; your account belongs to no partner organisation.")
    if not partner.active:
        return _no(PARTNER_INACTIVE, f"{partner.name} is not an active partner organisation; its grants open "
                                     "nothing until staff reactivate it.", partner=partner)
    active = [grant for grant in grants if grant_state(grant, now=now) == GRANT_ACTIVE]
    if not active:
        return _refuse_for_grants(grants, partner=partner, slug=slug, now=now)
    grant = active[0]
    terms = _terms_with_acceptance(user, now=now)
    if terms is None:
        return _no(TERMS_NOT_ACCEPTED, "No partner terms of use are in force yet, so no partner links can be "
                                       "issued; ask policy staff to publish them.", grant=grant, partner=partner)
    if not terms.accepted:
        return _no(TERMS_NOT_ACCEPTED, f"Accept the partner terms of use {terms.version} in the portal "
                                       f"({_portal()}) before downloading.", grant=grant, partner=partner)
    if action == DOWNLOAD and filename is not None:
        if lock and grant.has_quota:
            _lock_quota(grant)
        use = quota_use(grant, filename, now=now)
        if use is not None and use.remaining == 0:
            return _no(QUOTA_EXHAUSTED, f"Your grant allows {use.limit} link(s) per file every {use.period_s} s "
                                        f"and {filename} has used them; the next is allowed in "
                                        f"{use.retry_after_s} s.", grant=grant, partner=partner, terms=terms,
                       retry_after_s=use.retry_after_s)
    return Decision(True, GRANT, f"Grant #{grant.pk} of {partner.name} for {slug}, until "
                                 f"{grant.expires_at.isoformat()}.", grant=grant, partner=partner, terms=terms)


def _partner_of(user) -> PartnerOrganisation | None:
    membership = PartnerMember.objects.select_related("partner").filter(user=user).first()
    return membership.partner if membership else None


def _grants(user, size: ModelSize, *, lock: bool) -> list[AccessGrant]:
    """The grants for the size held by the user's partner organisation, newest first, with the partner.

    lock=True reads them FOR SHARE, with the partner and membership rows: links proceed side by side, yet a
    revocation, a deactivation or a removal from the partner (an UPDATE or DELETE of one of those rows)
    waits for them to commit, and they wait for an uncommitted one and then read the changed row.
    """
    grants = (AccessGrant.objects.select_related("partner")
              .filter(model_size=size, partner__members__user=user).order_by("-created_at", "-id"))
    if not lock:
        return list(grants)
    if not connection.in_atomic_block:
        raise RuntimeError("may(lock=True) must run inside a transaction: its locks last until the commit")
    if connection.vendor != "postgresql":
        return list(grants.select_for_update())  # SQLite serialises writers; the clause is dropped there
    sql, params = grants.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"{sql} FOR SHARE", params)
        rows = cursor.fetchall()
    return [_grant_from_row(row) for row in rows]


_GRANT_COLUMNS = [f.attname for f in AccessGrant._meta.concrete_fields]
_PARTNER_COLUMNS = [f.attname for f in PartnerOrganisation._meta.concrete_fields]


def _grant_from_row(row: tuple) -> AccessGrant:
    # The columns of the select_related query above: the grant's, then the partner's.
    if len(row) != len(_GRANT_COLUMNS) + len(_PARTNER_COLUMNS):
        raise RuntimeError(f"unexpected grant row of {len(row)} columns")
    grant = AccessGrant.from_db("default", _GRANT_COLUMNS, row[:len(_GRANT_COLUMNS)])
    grant.partner = PartnerOrganisation.from_db("default", _PARTNER_COLUMNS, row[len(_GRANT_COLUMNS):])
    return grant


def _lock_quota(grant: AccessGrant) -> None:
    """Links counted against one grant's quota are issued one after the other (until the caller commits).

    An advisory lock rather than FOR UPDATE on the grant row: the row is already held FOR SHARE, and two
    links upgrading their share locks at once would deadlock.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_QUOTA_LOCK_CLASS, grant.pk])


# pg_advisory_xact_lock(int, int) key class for quota counting; two-key locks never meet one-key locks.
_QUOTA_LOCK_CLASS = int.from_bytes(b"SGQT", "big") >> 1


def _terms_with_acceptance(user, *, now: datetime) -> TermsVersion | None:
    """The terms in force, with `accepted`: whether the user has accepted them (one query)."""
    accepted = TermsAcceptance.objects.filter(terms=OuterRef("pk"), user=user)
    return (TermsVersion.objects.filter(published_at__lte=now).annotate(accepted=Exists(accepted))
            .order_by("-published_at", "-id").first())


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
# A dataset has its own release state: published or not (releases/datasets.py decides, audited). It does
# not follow its size's stage: samples of unreleased sizes may be published, and withdrawing a size leaves
# its published datasets public until staff unpublish them.
DATASET_VIEW = "view"  # see the dataset, its statistics and checksums
DATASET_DOWNLOAD = "download"  # get a signed link to one split
DATASET_ACTIONS = (DATASET_VIEW, DATASET_DOWNLOAD)
UNPUBLISHED = "unpublished"


def may_dataset(user, dataset, action: str) -> Decision:
    """May `user` (possibly anonymous) see or download `dataset`? Published: anyone; unpublished: staff only."""
    if action not in DATASET_ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    if dataset.published_at is not None:
        return Decision(True, PUBLIC, f"{dataset.name} is published: anyone may download it.")
    if is_staff(user):
        return Decision(True, STAFF, f"{dataset.name} is not published; staff may see it.")
    return _no(UNPUBLISHED, f"No dataset {dataset.name!r}.")


def require_dataset(decision: Decision, *, dataset) -> Decision:
    """The allowed decision, or 404: an unpublished dataset gets the same answer as no dataset at all."""
    from registry.datasets.errors import DatasetNotFound

    if decision.allowed:
        return decision
    raise DatasetNotFound(f"No dataset {dataset.name!r}.")
