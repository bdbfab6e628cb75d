"""Public HTML pages of release governance: the stage history of every visible size."""

from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from registry import selectors as registry_selectors
from releases.access.rules import visible_sizes
from releases.models import StageChange


def history(request: HttpRequest) -> HttpResponse:
    # The size's revisions' changes (datasets have their own pages), with the revision each moved.
    changes = StageChange.objects.filter(dataset=None).select_related("request", "revision").order_by("applied_at", "id")
    sizes = registry_selectors.sizes_for_display(visible_sizes(request.user)).prefetch_related(
        Prefetch("stage_changes", queryset=changes, to_attr="history")
    )
    return render(request, "releases/history.html", {"sizes": [size for size in sizes if size.history]})
