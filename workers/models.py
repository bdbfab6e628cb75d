"""Jobs: the heavy work run by Celery workers, with status and progress staff can follow."""

import uuid

from django.conf import settings
from django.db import models


class Job(models.Model):
    class Kind(models.TextChoices):
        TRAIN = "train", "train"
        GENERATE = "generate_output_dataset", "generate output dataset"
        BASELINE = "detection_baseline", "detection baseline"

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
