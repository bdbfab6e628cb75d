"""Reads from the registry, shaped for the API and pages (related rows fetched up front)."""

from django.db.models import QuerySet

from registry.errors import ModelSizeNotFound
from registry.models import ModelSize
from releases.stages import Stage


def _visible_sizes(user) -> QuerySet[ModelSize]:
    sizes = ModelSize.objects.all()
    # Sizes still internal are not revealed to anyone but staff.
    if not (user and user.is_authenticated and user.is_staff):
        sizes = sizes.exclude(stage=Stage.INTERNAL)
    return sizes


def model_size_list(*, user) -> QuerySet[ModelSize]:
    return (
        _visible_sizes(user)
        .select_related("family", "card")
        .prefetch_related("artifacts", "evals")
        .order_by("family__name", "order", "slug")
    )


def model_size_get(*, slug: str, user) -> ModelSize:
    size = model_size_list(user=user).filter(slug=slug).first()
    if size is None:
        raise ModelSizeNotFound(f"No model size {slug!r}.")
    return size
