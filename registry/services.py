"""Writes to the registry: families, sizes, cards, eval results and training runs (files and their revisions:
revisions.py). Each create, edit or delete is announced with who made it (registry/changes.py), so releases/
audits it; `actor` None is the system (seeds, workers' own records)."""

from django.core.exceptions import ValidationError
from django.db import models, transaction

from registry import revisions
from registry.changes import record_delete, record_save
from registry.hparams import HParams, hparams_validate
from registry.models import EvalResult, ModelCard, ModelFamily, ModelSize, Revision, TrainingRun

# What an audit row shows of each record: the fields people set (not timestamps, nor a run's loss curve).
FAMILY_FIELDS = ("slug", "name", "description", "bundled")
SIZE_FIELDS = ("family", "slug", "display_name", "historical_names", "order", *HParams.__dataclass_fields__)
CARD_FIELDS = ("model_size", *ModelCard.SECTIONS)
EVAL_FIELDS = ("model_size", "revision", "training_run", "dataset", "metric", "value", "source")
TRAINING_RUN_FIELDS = ("model_size", "corpus", "settings", "steps", "final_val_loss", "finished_at")

_AUDITED: dict[type[models.Model], tuple[str, tuple[str, ...]]] = {
    ModelFamily: ("family", FAMILY_FIELDS),
    ModelSize: ("size", SIZE_FIELDS),
    ModelCard: ("model_card", CARD_FIELDS),
    EvalResult: ("eval_result", EVAL_FIELDS),
    TrainingRun: ("training_run", TRAINING_RUN_FIELDS),
}


# --------------------------------------------------------------------------- families
def family_save(*, family: ModelFamily, actor=None, ip: str | None = None) -> ModelFamily:
    """Create or update `family` as given (a form's instance, or family_upsert's)."""
    record_save(family, noun="family", fields=FAMILY_FIELDS, actor=actor, ip=ip)
    return family


def family_upsert(*, slug: str, name: str, description: str = "", bundled: bool = False, actor=None,
                  ip: str | None = None) -> ModelFamily:
    family = ModelFamily.objects.filter(slug=slug).first() or ModelFamily(slug=slug)
    family.name, family.description, family.bundled = name, description, bundled
    return family_save(family=family, actor=actor, ip=ip)


# --------------------------------------------------------------------------- sizes
@transaction.atomic
def model_size_save(*, size: ModelSize, actor=None, ip: str | None = None) -> ModelSize:
    """Create or update `size` as given (a form's instance, or model_size_upsert's). Its hparams are validated and
    never change once files exist. A size always has a revision: a new one starts with a revision without files
    (its stage history begins there), and new hparams of a size without files start a new one."""
    size.full_clean()
    if size.pk is not None and size.artifacts.exists():
        stored = ModelSize.objects.get(pk=size.pk).hparams
        if stored != size.hparams:
            raise ValidationError({"hparams": f"{size.slug} already has stored files; its hyperparameters cannot "
                                              "change."})
    # Never writes `stage` (record_save writes only the fields that moved): it moves only through releases'
    # services, possibly concurrently.
    record_save(size, noun="size", fields=SIZE_FIELDS, actor=actor, ip=ip)
    newest = revisions.revision_newest(size)
    if newest is None or newest.hparams != size.hparams.as_dict():
        revisions.revision_create(size=size, files={}, note="The size's first record, before any files.",
                                  actor=actor)
    return size


def model_size_upsert(
    *, family: ModelFamily, slug: str, display_name: str, hparams: dict, historical_names: list[str] = (),
    order: int = 0, actor=None, ip: str | None = None,
) -> ModelSize:
    """Create or update the size named `slug` (see model_size_save)."""
    valid = hparams_validate(hparams).as_dict()
    size = ModelSize.objects.filter(slug=slug).first() or ModelSize(slug=slug)
    size.family = family
    size.display_name = display_name
    size.historical_names = list(historical_names)
    size.order = order
    for name, value in valid.items():
        setattr(size, name, value)
    return model_size_save(size=size, actor=actor, ip=ip)


# --------------------------------------------------------------------------- cards and eval results
def model_card_save(*, card: ModelCard, actor=None, ip: str | None = None) -> ModelCard:
    """Create or update `card` as given; an unchanged card is not written (keeping updated_at meaningful)."""
    record_save(card, noun="model_card", fields=CARD_FIELDS, actor=actor, ip=ip)
    return card


def model_card_set(*, size: ModelSize, actor=None, ip: str | None = None, **sections: str) -> ModelCard:
    unknown = set(sections) - set(ModelCard.SECTIONS)
    if unknown:
        raise ValidationError(f"Unknown model card sections: {', '.join(sorted(unknown))}.")
    card = ModelCard.objects.filter(model_size=size).first() or ModelCard(model_size=size)
    for name, text in sections.items():
        setattr(card, name, text)
    return model_card_save(card=card, actor=actor, ip=ip)


def eval_result_save(*, result: EvalResult, actor=None, ip: str | None = None) -> EvalResult:
    record_save(result, noun="eval_result", fields=EVAL_FIELDS, actor=actor, ip=ip)
    return result


def eval_result_record(
    *, size: ModelSize, dataset: str, metric: str, value: float, source: str = "",
    training_run: TrainingRun | None = None, revision: Revision | None = None, actor=None, ip: str | None = None,
) -> EvalResult:
    """Record a figure for (size, dataset, metric, run, revision), replacing that one's earlier value."""
    result = EvalResult.objects.filter(
        model_size=size, dataset=dataset, metric=metric, training_run=training_run, revision=revision,
    ).first() or EvalResult(model_size=size, dataset=dataset, metric=metric, training_run=training_run,
                            revision=revision)
    result.value, result.source = value, source
    return eval_result_save(result=result, actor=actor, ip=ip)


# --------------------------------------------------------------------------- training runs
def training_run_save(*, run: TrainingRun, actor=None, ip: str | None = None) -> TrainingRun:
    """Create or update `run` as given (a worker's finished run, or a correction in the admin)."""
    record_save(run, noun="training_run", fields=TRAINING_RUN_FIELDS, actor=actor, ip=ip,
                data={"loss_curve_points": len(run.loss_curve or [])})
    return run


# --------------------------------------------------------------------------- deleting
def registry_record_delete(*, obj: models.Model, actor, ip: str | None = None) -> None:
    """Delete a family, size, card, eval result or training run, announced with what it held. Sizes and runs
    with revisions, and families with sizes, are protected by the database and cannot go."""
    noun, fields = _AUDITED[type(obj)]
    record_delete(obj, noun=noun, fields=fields, actor=actor, ip=ip)
