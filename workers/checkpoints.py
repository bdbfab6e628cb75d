"""A training job's checkpoints in S3: whatever moment a host dies at, the manifest names one whole checkpoint.

Each checkpoint is uploaded under keys of its own, `checkpoint/step-<step>-a<attempt>/`, and only then does the
manifest (`checkpoint/manifest.json`) name it; the one it named before is removed after that. A host killed
mid-upload leaves a folder no manifest names. (Overwriting one set of keys once let a resumed run pair step
20's manifest with step 40's weights.)

Only the job's current attempt changes the manifest: an attempt that was taken over (its worker stalled past
the stale limit) learns so from the job's row before it writes, and attempts never share keys, so none
removes what another wrote. The nodes of a multi-host run restore the very checkpoint node 0 restored.
"""

import json
import shutil
import time
from pathlib import Path

from registry import storage
from workers import jobs
from workers.models import Job

MANIFEST = "manifest.json"
RESTORE_TRIES = 4  # waiting 1, 2 and 4 s between them: an attempt taken over stops at its next heartbeat
LATEST = "latest"  # restore whatever the manifest names now


class CheckpointDamaged(Exception):
    """The manifest names files that are not in S3 and it is not being replaced: lost data, not a race."""


def prefix(job: Job) -> str:
    return f"{job.storage_prefix}checkpoint/"


def manifest(job: Job) -> dict | None:
    try:
        return json.loads(storage.read_bytes(prefix(job) + MANIFEST))
    except storage.ObjectMissing:
        return None


def _files_prefix(job: Job, named: dict) -> str:
    # Manifests from before checkpoints had keys of their own name files directly under the prefix.
    return named.get("folder") or prefix(job)


def upload(job: Job, directory: Path, step: int) -> None:
    """Store the checkpoint in `directory` (this attempt's, at `step`) and name it in the manifest; raises
    jobs.JobLost, having changed nothing others read, if the job is no longer this attempt's."""
    names = sorted(p.name for p in directory.iterdir() if p.is_file())
    folder = f"{prefix(job)}step-{step:09d}-a{job.attempts}/"
    for name in names:
        storage.upload_file(directory / name, folder + name)
    jobs.job_heartbeat(job)  # still ours? (an upload can outlast the stale limit on a slow link)
    previous = manifest(job)
    storage.upload_bytes(json.dumps({"step": step, "files": names, "folder": folder}).encode(),
                         prefix(job) + MANIFEST, content_type="application/json")
    if previous and previous.get("folder") and previous["folder"] != folder:
        for name in previous["files"]:
            storage.delete(previous["folder"] + name)


def _download(job: Job, directory: Path, named: dict) -> None:
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    for name in named["files"]:
        storage.download_file(_files_prefix(job, named) + name, directory / name)


def restore(job: Job, directory: Path, wanted: dict | str | None = LATEST) -> dict | None:
    """Bring a checkpoint from S3 into `directory` (S3's is the only copy trusted: a local folder may hold a
    partial or foreign one) and return its manifest, or None where there is none to resume from.

    `wanted`: LATEST, what the manifest names now; a manifest, exactly that checkpoint (a further node of a
    multi-host run takes node 0's); None, nothing (the directory is emptied).
    """
    if wanted is None:
        shutil.rmtree(directory, ignore_errors=True)
        return None
    if wanted != LATEST:
        try:
            _download(job, directory, wanted)
        except storage.ObjectMissing as missing:
            raise CheckpointDamaged(f"Job {job.pk}: checkpoint at step {wanted['step']} is incomplete "
                                    f"({missing}).") from None
        return wanted
    seen = None
    for attempt in range(RESTORE_TRIES):
        current = manifest(job)
        if current is None:
            shutil.rmtree(directory, ignore_errors=True)
            return None
        try:
            _download(job, directory, current)
            return current
        except storage.ObjectMissing as missing:
            if current == seen:
                raise CheckpointDamaged(f"Job {job.pk}: its checkpoint at step {current['step']} names files that "
                                        f"are not in S3 ({missing}); resubmit the job to train afresh.") from None
            seen = current  # replaced while read, by an attempt that has not yet seen it was taken over
            if attempt + 1 < RESTORE_TRIES:
                time.sleep(2**attempt)
    raise CheckpointDamaged(f"Job {job.pk}: its checkpoint kept changing while it was read ({RESTORE_TRIES} tries).")


def delete_all(job: Job) -> None:
    for key in storage.list_keys(prefix(job)):
        storage.delete(key)
