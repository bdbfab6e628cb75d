"""Writes to the registry: families, sizes, cards, artifacts (uploaded to S3) and eval results."""

import contextlib
import secrets
from pathlib import Path

from django.core.exceptions import ValidationError
from django.db import transaction

from config.errors import DomainError
from registry import storage
from registry.errors import ArtifactExists, ArtifactsFrozen
from registry.filenames import validate_filename
from registry.hparams import hparams_validate
from registry.models import Artifact, EvalResult, ModelCard, ModelFamily, ModelSize, TrainingRun
from registry.signals import artifact_registered
from registry.weights import WEIGHTS_SUFFIX, weights_check, weights_name_check
from releases.stage_names import Stage

_FORMAT_BY_SUFFIX = {
    ".safetensors": Artifact.Format.SAFETENSORS,
    ".json": Artifact.Format.JSON,
    ".txt": Artifact.Format.TEXT,
    ".png": Artifact.Format.PNG,
    ".jsonl": Artifact.Format.JSONL,
}


def family_upsert(*, slug: str, name: str, description: str = "", bundled: bool = False) -> ModelFamily:
    family, _ = ModelFamily.objects.update_or_create(
        slug=slug, defaults={"name": name, "description": description, "bundled": bundled}
    )
    return family


def model_size_upsert(
    *, family: ModelFamily, slug: str, display_name: str, hparams: dict, historical_names: list[str] = (),
    order: int = 0,
) -> ModelSize:
    """Create or update a size; hparams are validated and never changed once artifacts exist."""
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


def artifact_key(size: ModelSize, filename: str) -> str:
    """Object keys are built here only; the random segment keeps old links from reaching new bytes."""
    validate_filename(filename)
    return f"models/{size.slug}/{secrets.token_hex(8)}/{filename}"


def require_unreleased(size: ModelSize) -> None:
    """ArtifactsFrozen unless `size` (as stored now) is still internal: only then may its files change."""
    if size.stage != Stage.INTERNAL:
        raise ArtifactsFrozen(f"{size.slug} is {size.stage}: the files partners or the public may download never "
                              "change once a size has left internal.", model_size=size.slug, stage=size.stage)


def artifact_register(
    *, size: ModelSize, path: Path, filename: str | None = None, expected_sha256: str | None = None,
    training_run: TrainingRun | None = None, replace: bool = False, actor=None,
) -> Artifact:
    """Upload a local file to S3 (sha256 checked) and record it as one of the size's files, announced with
    `artifact_registered` (releases/ audits it; `actor` is who did it, None for the system).

    Only while the size is `internal`: once it has left, its files never change (ArtifactsFrozen, 409), checked
    before the upload and again, with the size locked, before the record. Weights are checked first
    (registry/weights.py): pickles are refused, and a `.safetensors` file must be well formed with the tensors
    the size's hparams call for; a refused file is never uploaded.
    """
    path = Path(path)
    filename = path.name if filename is None else filename
    validate_filename(filename)
    weights_name_check(filename)
    file_format = _FORMAT_BY_SUFFIX.get(Path(filename).suffix)
    if file_format is None:
        raise ValidationError({"filename": f"Unsupported file type {Path(filename).suffix!r}."})
    if Path(filename).suffix == WEIGHTS_SUFFIX:
        weights_check(size=size, path=path, filename=filename)
    require_unreleased(ModelSize.objects.get(pk=size.pk))
    existing = Artifact.objects.filter(model_size=size, filename=filename).first()
    if existing is not None and not replace:
        raise ArtifactExists(f"{size.slug} already has a file named {filename}.")
    stored = storage.upload_file(path, artifact_key(size, filename), expected_sha256=expected_sha256)
    try:
        with transaction.atomic():
            # The stage as of now, held until commit: a release applied meanwhile waits, or refuses this.
            require_unreleased(ModelSize.objects.select_for_update().get(pk=size.pk))
            if existing is not None:
                existing.delete()
            artifact = Artifact.objects.create(
                model_size=size, training_run=training_run, filename=filename, s3_key=stored.key,
                bytes=stored.bytes, sha256=stored.sha256, format=file_format,
            )
            artifact_registered.send(sender=Artifact, artifact=artifact, replaced=existing, actor=actor)
    except BaseException:
        with contextlib.suppress(DomainError):  # the error to report is the one that stopped the record
            storage.delete(stored.key)  # the uploaded object under its fresh key belongs to nothing
        raise
    if existing is not None:
        transaction.on_commit(lambda: storage.delete(existing.s3_key))
    return artifact


def artifact_verify(*, artifact: Artifact) -> bool:
    """Whether the stored object still has the bytes and sha256 the registry recorded."""
    stored = storage.head(artifact.s3_key)
    return stored.bytes == artifact.bytes and stored.sha256 == artifact.sha256


def eval_result_record(
    *, size: ModelSize, dataset: str, metric: str, value: float, source: str = "",
    training_run: TrainingRun | None = None,
) -> EvalResult:
    result, _ = EvalResult.objects.update_or_create(
        model_size=size, dataset=dataset, metric=metric, training_run=training_run,
        defaults={"value": value, "source": source},
    )
    return result
