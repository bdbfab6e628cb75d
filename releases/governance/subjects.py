"""What a stage change moves: a revision of a size's files, an output dataset, or a whole size (withdrawn with
every revision). The one place that reads a subject's stage, records what it releases and moves it.

A size's own stage is the highest its revisions hold (releases/stages.py ranks them); it is refreshed here
whenever a revision moves, so lists and pages can filter on it.
"""

from dataclasses import dataclass

from registry.models import ModelSize, OutputDataset, Revision
from releases import stages
from releases.governance.errors import InvalidStageRequest
from releases.stage_names import Stage


@dataclass(frozen=True)
class Subject:
    size: ModelSize | None
    revision: Revision | None = None
    dataset: OutputDataset | None = None

    @property
    def whole_size(self) -> bool:
        return self.revision is None and self.dataset is None

    @property
    def label(self) -> str:
        if self.dataset is not None:
            return f"dataset {self.dataset.name}"
        if self.revision is not None:
            return f"{self.size.slug}@{self.revision.short}"
        return f"{self.size.slug} (every revision)"

    def stage_now(self) -> str:
        """The subject's stage as stored now (a whole size: its highest revision's)."""
        if self.dataset is not None:
            return OutputDataset.objects.values_list("stage", flat=True).get(pk=self.dataset.pk)
        if self.revision is not None:
            return Revision.objects.values_list("stage", flat=True).get(pk=self.revision.pk)
        return ModelSize.objects.values_list("stage", flat=True).get(pk=self.size.pk)

    def snapshot(self) -> dict:
        """What the subject releases, as the record keeps it: the exact bytes (digests), never a description."""
        if self.dataset is not None:
            return {"dataset": self.dataset.name,
                    "revision": self.dataset.revision.revision if self.dataset.revision_id else None,
                    "splits": [[part.split, part.bytes, part.sha256] for part in self.dataset.splits.order_by("split")]}
        if self.revision is not None:
            return _revision_snapshot(self.revision)
        return {"model": self.size.slug, "revisions": [_revision_snapshot(revision)
                                                       for revision in self.size.revisions.order_by("number")]}

    def move(self, *, from_stage: str, to_stage: str) -> bool:
        """Conditional UPDATE: False when the subject is no longer in `from_stage` (a concurrent change won)."""
        if self.dataset is not None:
            return OutputDataset.objects.filter(pk=self.dataset.pk, stage=from_stage).update(stage=to_stage) == 1
        if self.revision is not None:
            moved = Revision.objects.filter(pk=self.revision.pk, stage=from_stage).update(stage=to_stage) == 1
        else:  # withdraw every revision of the size, if the size is still where the request found it
            if not ModelSize.objects.filter(pk=self.size.pk, stage=from_stage).exists():
                return False
            Revision.objects.filter(model_size=self.size).exclude(stage=to_stage).update(stage=to_stage)
            moved = True
        if moved:
            size_stage_refresh(self.size)
        return moved


def _revision_snapshot(revision: Revision) -> dict:
    return {"revision": revision.revision, "number": revision.number,
            "files": [[a.filename, a.bytes, a.sha256] for a in revision.artifacts.order_by("filename")]}


def size_stage_refresh(size: ModelSize) -> str:
    """Set the size's stage to the highest of its revisions' and return it."""
    held = set(Revision.objects.filter(model_size=size).values_list("stage", flat=True))
    stage = stages.highest(held) if held else Stage.INTERNAL
    ModelSize.objects.filter(pk=size.pk).update(stage=stage)
    size.stage = stage
    return stage


def subject_for(*, size: ModelSize | None = None, revision: Revision | None = None,
                dataset: OutputDataset | None = None, all_revisions: bool = False) -> Subject:
    """The subject a request names: a dataset; a revision of `size` (default: its newest); or, with
    `all_revisions`, the whole size."""
    if dataset is not None:
        return Subject(size=dataset.model_size, dataset=dataset)
    if size is None and revision is not None:
        size = revision.model_size
    if all_revisions:
        return Subject(size=size)
    if revision is None:
        revision = size.revisions.order_by("-number").first()
        if revision is None:
            raise InvalidStageRequest(f"{size.slug} has no revision to release.",
                                      fields={"revision": ["The size has no revision."]})
    if revision.model_size_id != size.pk:
        raise InvalidStageRequest(f"Revision {revision.short} is not one of {size.slug}'s.",
                                  fields={"revision": ["Not a revision of this size."]})
    return Subject(size=size, revision=revision)


def subject_of(request) -> Subject:
    """The subject of a request or an applied change."""
    return Subject(size=request.model_size, revision=request.revision, dataset=request.dataset)
