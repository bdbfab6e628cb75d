"""Reads from the registry, shaped for the API and pages (related rows fetched up front). Who may see which
size is not decided here: callers pass the sizes they may show (releases.access.rules.visible_sizes)."""

from django.db.models import QuerySet

from registry.errors import ModelSizeNotFound
from registry.models import ModelSize


def sizes_for_display(sizes: QuerySet[ModelSize]) -> QuerySet[ModelSize]:
    """`sizes` with their family, card, files and evaluations fetched up front, in catalogue order."""
    return (
        sizes.select_related("family", "card")
        .prefetch_related("artifacts", "evals")
        .order_by("family__name", "order", "slug")
    )


def size_from(sizes: QuerySet[ModelSize], *, slug: str) -> ModelSize:
    """The size called `slug` among `sizes`, or ModelSizeNotFound (the same answer as for no size at all)."""
    size = sizes_for_display(sizes).filter(slug=slug).first()
    if size is None:
        raise ModelSizeNotFound(f"No model size {slug!r}.")
    return size
