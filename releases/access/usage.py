"""Usage: the links issued per organisation, size, revision and day, and the bytes they cover — for policy
staff (every organisation, filtered) and for a partner's own members. Read from IssuedLink, the record every
link leaves, so a report always agrees with the links themselves."""

import csv
import io
from dataclasses import dataclass
from datetime import date

from django.db.models import Count, QuerySet, Sum
from django.db.models.functions import TruncDate

from releases.access.models import IssuedLink, PartnerOrganisation

CSV_COLUMNS = ["day", "partner", "model_size", "revision", "links", "bytes"]
NO_PARTNER = "(none: public or staff)"


@dataclass(frozen=True)
class UsageRow:
    day: date
    partner: str
    model_size: str
    revision: str
    links: int
    bytes: int


def usage_rows(*, partner: PartnerOrganisation | None = None, size_slug: str | None = None,
               since: date | None = None, until: date | None = None) -> list[UsageRow]:
    """Newest day first; `since` and `until` are inclusive days (UTC)."""
    links: QuerySet[IssuedLink] = IssuedLink.objects.all()
    if partner is not None:
        links = links.filter(partner=partner)
    if size_slug:
        links = links.filter(model_size__slug=size_slug)
    if since is not None:
        links = links.filter(issued_at__date__gte=since)
    if until is not None:
        links = links.filter(issued_at__date__lte=until)
    grouped = (links.annotate(day=TruncDate("issued_at"))
               .values("day", "partner__name", "model_size__slug", "revision__revision")
               .annotate(links=Count("id"), bytes=Sum("bytes"))
               .order_by("-day", "partner__name", "model_size__slug", "revision__revision"))
    return [UsageRow(day=row["day"], partner=row["partner__name"] or NO_PARTNER, model_size=row["model_size__slug"],
                     revision=row["revision__revision"] or "", links=row["links"], bytes=row["bytes"] or 0)
            for row in grouped]


def _cell(text: str) -> str:
    """A spreadsheet runs a cell that starts with = + - @ (or a tab or CR) as a formula: partner names come from
    applicants, so such a cell is quoted as text."""
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def usage_csv(rows: list[UsageRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([row.day.isoformat(), _cell(row.partner), _cell(row.model_size), row.revision, row.links,
                         row.bytes])
    return out.getvalue()
