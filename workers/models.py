"""Jobs: the heavy work run by Celery workers, with status and progress staff can follow."""

import uuid

from django.conf import settings
from django.db import models


class Job(models.Model):
    class Kind(models.TextChoices):
        TRAIN = "train", "train"
        GENERATE = "generate_output_dataset", "generate output dataset"
        BASELINE = "detection_baseline", "detection baseline"
        EVALUATE = "evaluate", "evaluate"
        STUDY = "study", "study"

    class Status(models.TextChoices):
        QUEUED = "queued", "queued"
        RUNNING = "running", "running"
        SUCCEEDED = "succeeded", "succeeded"
        FAILED = "failed", "failed"
        CANCELLED = "cancelled", "cancelled"

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    # Names the job's objects in S3 and its scratch folder: unlike the id, never reused by a new database.
    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    params = models.JSONField(default=dict)
    # The bytes it computes on, by sha256 (workers/inputs.py): {"corpus_sha256", "tokenizer": {file: sha256}}.
    inputs = models.JSONField(default=dict, blank=True, editable=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    progress_done = models.PositiveBigIntegerField(default=0)
    progress_total = models.PositiveBigIntegerField(default=0)
    progress_unit = models.CharField(max_length=16, blank=True)
    # What the job produced: {"artifacts": [...], "training_run": id, "datasets": [...], ...}
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    # Each claim by a worker increments it; a stale claim can be taken over (see workers/jobs.py).
    attempts = models.PositiveSmallIntegerField(default=0)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # Last hand-over to the broker; a queued job not picked up for long is handed over again.
    enqueued_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("cancel_job", "Can cancel jobs")]

    def __str__(self) -> str:
        return f"Job {self.pk} ({self.kind}, {self.status})"

    @property
    def storage_prefix(self) -> str:
        return f"jobs/{self.uid.hex}/"


class Study(models.Model):
    """A scaling study (workers/study/): every size of a family trained, evaluated, sampled and detected under one
    set of settings. Each step is a job of its own; a study job drives them and can be run again to resume."""

    name = models.SlugField(max_length=60, unique=True)
    # Every setting, normalised (workers/job_params.py StudyParams): the same name always means the same study.
    params = models.JSONField()
    # Where its corpora were copied at the start (s3://corpora/studies/<name>/…), so every step reads the same bytes.
    corpora = models.JSONField(default=dict, blank=True, editable=False)
    # The family's sizes (slugs, smallest first) when it started: a size added later is not part of it.
    sizes = models.JSONField(default=list, blank=True, editable=False)
    job = models.ForeignKey(Job, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
                            help_text="The study job that drives it now (or last did).")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "studies"

    def __str__(self) -> str:
        return self.name


class StudyStep(models.Model):
    """One step of a study and the job that does (or did) it; a step whose job failed gets a new one on a rerun."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="steps")
    key = models.CharField(max_length=100, help_text="e.g. train:mini-1m, baseline:mini-1m:k40")
    job = models.ForeignKey(Job, on_delete=models.PROTECT, related_name="+")
    # The study job that submitted it: a failure in this run fails the study; one from an earlier run is redone.
    run = models.ForeignKey(Job, on_delete=models.SET_NULL, null=True, related_name="+")

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["study", "key"], name="study_step_once")]

    def __str__(self) -> str:
        return f"{self.study.name}/{self.key}"
