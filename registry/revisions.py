"""Revisions: immutable, content-addressed sets of a size's files. Training or registering files makes a new
`internal` revision; a revision, once made, never changes, and neither does any object it names.

Files are stored under their content's key (`blobs/sha256/<hex>`, registry/storage.py): identical bytes are
stored once, whichever revisions hold them, and no object is ever overwritten. A revision's id is derived from
its files and hyperparameters (registry/revision_ids.py), so registering the same bytes again gives back the
same revision. Only `releases/` moves a revision's stage.
"""

from dataclasses import dataclass
from pathlib import Path

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max

from registry import storage
from registry.errors import ArtifactExists, RevisionNotFound
from registry.filenames import validate_filename
from registry.models import Artifact, ModelSize, Revision, TrainingRun
from registry.revision_ids import revision_id
from registry.signals import revision_created
from registry.weights import WEIGHTS_SUFFIX, weights_check, weights_name_check

_FORMAT_BY_SUFFIX = {
    ".safetensors": Artifact.Format.SAFETENSORS,
    ".json": Artifact.Format.JSON,
    ".txt": Artifact.Format.TEXT,
    ".png": Artifact.Format.PNG,
    ".jsonl": Artifact.Format.JSONL,
}


@dataclass(frozen=True)
class _File:
    filename: str
    key: str
    bytes: int
    sha256: str
    format: str
    training_run_id: int | None


def _format_of(filename: str) -> str:
    validate_filename(filename)
    weights_name_check(filename)
    file_format = _FORMAT_BY_SUFFIX.get(Path(filename).suffix)
    if file_format is None:
        raise ValidationError({"filename": f"Unsupported file type {Path(filename).suffix!r}."})
    return file_format


def revision_newest(size: ModelSize) -> Revision | None:
    return size.revisions.order_by("-number").first()


def revision_get(size: ModelSize, revision: str) -> Revision:
    """The size's revision with this id (40 hex digits), or RevisionNotFound."""
    found = (size.revisions.filter(revision=revision).first()
             if isinstance(revision, str) and len(revision) == 40 and revision.isalnum() else None)
    if found is None:
        raise RevisionNotFound(f"{size.slug} has no revision {revision!r}.")
    return found


def revision_create(
    *, size: ModelSize, files: dict[str, Path], base: Revision | None = None, inherit: bool = False,
    training_run: TrainingRun | None = None, note: str = "", actor=None,
    expected_sha256: dict[str, str] | None = None,
) -> Revision:
    """A new `internal` revision of `size` holding `files` (filename → local path), and, with `inherit`, every
    other file of `base` (default: the newest revision). Its parent is `base`. If the size already has a
    revision with exactly this content, that revision is returned and nothing new is made.

    Weights are checked before anything is stored (registry/weights.py): pickles are refused, and a
    `.safetensors` file must be well formed with the tensors the size's hparams call for. Announced with
    `revision_created` (releases/ audits it; `actor` is who did it, None for the system).
    """
    base = base if base is not None else revision_newest(size)
    checked = {}
    for filename, path in files.items():
        file_format = _format_of(filename)
        if Path(filename).suffix == WEIGHTS_SUFFIX:
            weights_check(size=size, path=Path(path), filename=filename)
        checked[filename] = (Path(path), file_format)
    stored: dict[str, _File] = {}
    if inherit and base is not None:
        for artifact in base.artifacts.all():
            stored[artifact.filename] = _File(artifact.filename, artifact.s3_key, artifact.bytes, artifact.sha256,
                                              artifact.format, artifact.training_run_id)
    for filename, (path, file_format) in checked.items():
        expected = (expected_sha256 or {}).get(filename)
        blob = storage.blob_put(path, expected_sha256=expected)
        stored[filename] = _File(filename, blob.key, blob.bytes, blob.sha256, file_format,
                                 training_run.pk if training_run else None)
    hparams = size.hparams.as_dict()
    digest = revision_id([(f.filename, f.bytes, f.sha256) for f in stored.values()], hparams)
    with transaction.atomic():
        # One at a time per size: numbers follow each other, and the same content is never recorded twice.
        ModelSize.objects.select_for_update().filter(pk=size.pk).first()
        existing = size.revisions.filter(revision=digest).first()
        if existing is not None:
            return existing
        number = (size.revisions.aggregate(last=Max("number"))["last"] or 0) + 1
        revision = Revision.objects.create(
            model_size=size, revision=digest, number=number, parent=base, hparams=hparams,
            training_run=training_run, uploaded_by=actor if actor is not None and actor.pk else None,
            note=(note or "").strip())
        Artifact.objects.bulk_create([
            Artifact(model_size=size, revision=revision, filename=f.filename, s3_key=f.key, bytes=f.bytes,
                     sha256=f.sha256, format=f.format, training_run_id=f.training_run_id)
            for f in sorted(stored.values(), key=lambda f: f.filename)])
        revision_created.send(sender=Revision, revision=revision, actor=actor)
    return revision


def artifact_register(
    *, size: ModelSize, path: Path, filename: str | None = None, expected_sha256: str | None = None,
    training_run: TrainingRun | None = None, replace: bool = False, actor=None,
) -> Artifact:
    """Register one file: a new internal revision with the newest revision's files and this one (which
    replaces a file of the same name only with `replace`). The released revisions stay as they are."""
    path = Path(path)
    filename = path.name if filename is None else filename
    _format_of(filename)  # a hostile name is refused before it reaches a query
    base = revision_newest(size)
    if base is not None and not replace and base.artifacts.filter(filename=filename).exists():
        raise ArtifactExists(f"{size.slug} already has a file named {filename} (revision {base.short}).")
    revision = revision_create(size=size, files={filename: path}, base=base, inherit=True, training_run=training_run,
                               actor=actor, expected_sha256={filename: expected_sha256} if expected_sha256 else None)
    return revision.artifacts.get(filename=filename)


def artifact_verify(*, artifact: Artifact) -> bool:
    """Whether the stored object still has the bytes and sha256 the registry recorded."""
    stored = storage.head(artifact.s3_key)
    return stored.bytes == artifact.bytes and stored.sha256 == artifact.sha256
