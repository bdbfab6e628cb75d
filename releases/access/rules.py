"""The access rule: `may(user, size, action)` says whether someone may have a size's files, and if not, why.

Every API endpoint, admin view and portal page asks this one function; none repeats its logic.
`require` turns a refusal into the one HTTP answer for its reason.
"""

import functools
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import QuerySet
from django.db.models.expressions import Col
from django.utils import timezone

from registry.datasets.errors import DatasetNotFound
from registry.errors import ModelSizeNotFound
from registry.models import ModelSize, OutputDataset
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


def sees_unreleased(user) -> bool:
    """Whether `user` may see and download sizes and datasets at every stage: policy staff and operators, by
    the permission their group grants. `is_staff` (admin entry) and superuser status grant nothing here."""
    return can(user, SEE_UNRELEASED)


def visible_sizes(user) -> QuerySet[ModelSize]:
    """The sizes `user` may know exist: every one for staff; for everyone else, those past `internal`.

    Every list, page, history and detail asks this (a size that is not visible answers 404, as no size does).
    """
    sizes = ModelSize.objects.all()
    return sizes if sees_unreleased(user) else sizes.exclude(stage=Stage.INTERNAL)


def visible_datasets(user) -> QuerySet[OutputDataset]:
    """The output datasets `user` may know exist: published ones; staff also see the rest, to decide on them."""
    datasets = OutputDataset.objects.all()
    return datasets if sees_unreleased(user) else datasets.filter(published_at__isnull=False)


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

    - Staff — users whose role grants releases.see_unreleased (policy staff, operators) — may always, at every
      stage (internal and withdrawn included: they decide about these sizes). `is_staff` and superuser status
      grant nothing here.
    - Everyone else: an `internal` size is refused as `stage_internal` (endpoints answer 404, so its
      existence is not revealed) and a `withdrawn` one as `withdrawn`; a `public` size needs no grant and
      no account. A `partners` size needs an account that is a member of an active partner organisation
      holding a grant for the size that has started, not expired and not been revoked, the terms of use in
      force accepted, and, for a DOWNLOAD of a file under a quota, a link left in the quota's window.

    lock=True (inside a transaction) share-locks the partner's grant rows for the size first
    (`_lock_access_rows`): a revocation that committed before this call is seen, one that comes later waits
    until the caller's transaction ends, and concurrent links on a grant with a quota are counted one after
    the other (`_lock_quota`).
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    authenticated = user is not None and user.is_authenticated
    if lock:
        _lock_access_rows(user if authenticated else None, size)
    # Read after any lock wait: a revocation that committed during the wait is stamped later than a clock
    # read before it. (Revocations are stamped with the moment they are made.)
    now = now or timezone.now()
    facts = _facts(user if authenticated else None, size, now=now)
    if authenticated and sees_unreleased(user):
        return Decision(True, STAFF, "Staff may download every size at every stage.")
    slug = size.slug
    if facts.stage == Stage.INTERNAL:
        return _no(STAGE_INTERNAL, f"No model size {slug!r}.")
    if facts.stage == Stage.WITHDRAWN:
        return _no(WITHDRAWN, f"{slug} has been withdrawn: no new download links are issued for it.")
    if facts.stage == Stage.PUBLIC:
        return Decision(True, PUBLIC, f"{slug} is public: anyone may download it.")
    # The partners stage.
    if not authenticated:
        return _no(NOT_AUTHENTICATED, f"{slug} is available to partners holding a grant; send "
                                      "`Authorization: Token <key>` (create a token in the partner portal).")
    partner, grants, terms = facts.partner, facts.grants, facts.terms
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


@dataclass(frozen=True)
class _Facts:
    """What `may` decides on, as the database has it (read in one statement: a link reads it twice)."""

    stage: str  # the size's stage now, whatever the caller's copy of the size says
    partner: PartnerOrganisation | None  # the user's organisation (a user belongs to at most one)
    grants: list[AccessGrant]  # its grants for the size, newest first
    terms: TermsVersion | None  # the terms in force, with `accepted`: whether the user has accepted them


def _lock_access_rows(user, size: ModelSize) -> None:
    """Share-lock the user's membership, partner and grants for the size until the transaction ends.

    Links proceed side by side, yet a revocation, a deactivation or a removal from the partner (an UPDATE or
    DELETE of one of those rows) waits for them to commit, and they wait for an uncommitted one. The facts
    are read after this, so they include whatever committed during the wait. SQLite serialises writers
    itself, so there this locks nothing.
    """
    if not connection.in_atomic_block:
        raise RuntimeError("may(lock=True) must run inside a transaction: its locks last until the commit")
    if user is None or connection.vendor != "postgresql":
        return
    q = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(f"""
            SELECT 1 FROM {q(PartnerMember._meta.db_table)} m
            JOIN {q(PartnerOrganisation._meta.db_table)} p ON p.id = m.partner_id
            JOIN {q(AccessGrant._meta.db_table)} g ON g.partner_id = p.id AND g.model_size_id = %(size)s
            WHERE m.user_id = %(user)s
            FOR SHARE""", {"user": user.pk, "size": size.pk})


def _facts(user, size: ModelSize, *, now: datetime) -> _Facts:
    """The facts for an authenticated `user`, or for anyone (user=None: only the stage counts), as of `now`."""
    rows = _facts_rows(user, size, now=now)
    if not rows:
        raise ModelSizeNotFound(f"No model size {size.slug!r}.")  # deleted meanwhile
    first = rows[0]
    partner = _model_from_row(PartnerOrganisation, first, "p") if first[_column_index["p"]] is not None else None
    grants = []
    for row in rows:
        if row[_column_index["g"]] is not None:
            grant = _model_from_row(AccessGrant, row, "g")
            grant.partner = partner
            grants.append(grant)
    terms = None
    if first[_column_index["t"]] is not None:
        terms = _model_from_row(TermsVersion, first, "t")
        terms.accepted = bool(first[-1])
    return _Facts(stage=first[0], partner=partner, grants=grants, terms=terms)


# The columns `_facts_rows` selects: the stage, then the partner's, the grant's and some of
# the terms' (each a model's columns in field order), and last whether the user accepted those terms.
_facts_fields = {
    "p": list(PartnerOrganisation._meta.concrete_fields),
    "g": list(AccessGrant._meta.concrete_fields),
    "t": [TermsVersion._meta.get_field(name) for name in ("id", "version", "published_at")],
}
_column_index = {"p": 1, "g": 1 + len(_facts_fields["p"]), "t": 1 + len(_facts_fields["p"]) + len(_facts_fields["g"])}


def _facts_rows(user, size: ModelSize, *, now: datetime) -> list[tuple]:
    # Hand-written: the ORM compiling these joins took longer than PostgreSQL answering them.
    q = connection.ops.quote_name
    table = {model: q(model._meta.db_table) for model in (
        ModelSize, PartnerMember, PartnerOrganisation, AccessGrant, TermsVersion, TermsAcceptance)}
    columns = ", ".join(f"{alias}.{q(field.column)}" for alias, fields in _facts_fields.items() for field in fields)
    sql = f"""
        SELECT s.stage,
               {columns},
               EXISTS (SELECT 1 FROM {table[TermsAcceptance]} a WHERE a.terms_id = t.id AND a.user_id = %(user)s)
        FROM {table[ModelSize]} s
        LEFT JOIN {table[PartnerMember]} m ON m.user_id = %(user)s
        LEFT JOIN {table[PartnerOrganisation]} p ON p.id = m.partner_id
        LEFT JOIN {table[AccessGrant]} g ON g.partner_id = p.id AND g.model_size_id = s.id
        LEFT JOIN (SELECT id, version, published_at FROM {table[TermsVersion]} WHERE published_at <= %(now)s
                   ORDER BY published_at DESC, id DESC LIMIT 1) t ON 1 = 1
        WHERE s.id = %(size)s
        ORDER BY g.created_at DESC, g.id DESC"""
    with connection.cursor() as cursor:
        cursor.execute(sql, {"user": user.pk if user is not None else None,
                             "now": connection.ops.adapt_datetimefield_value(now), "size": size.pk})
        return cursor.fetchall()


def _model_from_row(model, row: tuple, alias: str):
    """An instance from its columns in a `_facts_rows` row, converted as the ORM converts them (SQLite's
    datetimes come back naive)."""
    start = _column_index[alias]
    values = list(row[start:start + len(_facts_fields[alias])])
    for offset, col, converters in _converters(connection.vendor, alias):
        for converter in converters:
            values[offset] = converter(values[offset], col, connection)
    return model.from_db(connection.alias, [field.attname for field in _facts_fields[alias]], values)


@functools.cache
def _converters(vendor: str, alias: str) -> list[tuple[int, Col, list]]:
    # Per backend, the columns that have converters (none on PostgreSQL) and theirs: asked once, not per row.
    found = []
    for offset, field in enumerate(_facts_fields[alias]):
        col = field.get_col(alias)
        converters = [*connection.ops.get_db_converters(col), *field.get_db_converters(connection)]
        if converters:
            found.append((offset, col, converters))
    return found


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
    if sees_unreleased(user):
        return Decision(True, STAFF, f"{dataset.name} is not published; staff may see it.")
    return _no(UNPUBLISHED, f"No dataset {dataset.name!r}.")


def require_dataset(decision: Decision, *, dataset) -> Decision:
    """The allowed decision, or 404: an unpublished dataset gets the same answer as no dataset at all."""
    if decision.allowed:
        return decision
    raise DatasetNotFound(f"No dataset {dataset.name!r}.")
