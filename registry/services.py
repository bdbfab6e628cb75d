"""Writes to the registry: families, sizes, cards and eval results (files and their revisions: revisions.py)."""


from django.core.exceptions import ValidationError

from registry import revisions
from registry.hparams import hparams_validate
from registry.models import EvalResult, ModelCard, ModelFamily, ModelSize, Revision, TrainingRun


def family_upsert(*, slug: str, name: str, description: str = "", bundled: bool = False) -> ModelFamily:
    family, _ = ModelFamily.objects.update_or_create(
        slug=slug, defaults={"name": name, "description": description, "bundled": bundled}
    )
    return family


def model_size_upsert(
    *, family: ModelFamily, slug: str, display_name: str, hparams: dict, historical_names: list[str] = (),
    order: int = 0,
) -> ModelSize:
    """Create or update a size; hparams are validated and never changed once files exist. A size always has a
    revision: a new one starts with a revision without files (its stage history begins there)."""
    valid = hparams_validate(hparams).as_dict()
    size = ModelSize.objects.filter(slug=slug).first()
    if size is not None and size.artifacts.exists() and size.hparams.as_dict() != valid:
        raise ValidationError({"hparams": f"{slug} already has stored files; its hyperparameters cannot change."})
    size = size or ModelSize(slug=slug)
    size.family = family
    size.display_name = display_name
    size.historical_names = list(historical_names)
    size.order = order
    for name, value in valid.items():
        setattr(size, name, value)
    size.full_clean()
    if size.pk:
        # Never write `stage` here: it moves only through releases' services, possibly concurrently.
        size.save(update_fields=["family", "display_name", "historical_names", "order", *valid])
    else:
        size.save()
    newest = revisions.revision_newest(size)
    if newest is None or newest.hparams != valid:
        revisions.revision_create(size=size, files={}, note="The size's first record, before any files.")
    return size


def model_card_set(*, size: ModelSize, **sections: str) -> ModelCard:
    unknown = set(sections) - set(ModelCard.SECTIONS)
    if unknown:
        raise ValidationError(f"Unknown model card sections: {', '.join(sorted(unknown))}.")
    card = ModelCard.objects.filter(model_size=size).first() or ModelCard(model_size=size)
    if card.pk and all(getattr(card, name) == text for name, text in sections.items()):
        return card  # unchanged: keep updated_at meaningful
    for name, text in sections.items():
        setattr(card, name, text)
    card.save()
    return card


def eval_result_record(
    *, size: ModelSize, dataset: str, metric: str, value: float, source: str = "",
    training_run: TrainingRun | None = None, revision: Revision | None = None,
) -> EvalResult:
    result, _ = EvalResult.objects.update_or_create(
        model_size=size, dataset=dataset, metric=metric, training_run=training_run, revision=revision,
        defaults={"value": value, "source": source},
    )
    return result
