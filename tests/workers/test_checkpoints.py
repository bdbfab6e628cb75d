"""A training job's checkpoints in S3 (workers/checkpoints.py): whatever moment a host dies at, the manifest names
one whole checkpoint, and only the job's current attempt changes it.

Seen in CI: a host killed while uploading step 40 over step 20's keys left step 20's manifest beside step 40's
weights, and the resumed run went on from a model it did not describe."""

import json

import pytest

from registry import storage
from workers import checkpoints, jobs
from workers.checkpoints import CheckpointDamaged
from workers.errors import JobLost
from workers.models import Job

FILES = ("model.safetensors", "optimizer.safetensors", "state.json")


@pytest.fixture
def job(db, s3) -> Job:
    """A training job as its first attempt runs it."""
    return jobs.job_claim(Job.objects.create(kind=Job.Kind.TRAIN, params={"model_size": "mini-1m"}).pk)


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    monkeypatch.setattr(checkpoints.time, "sleep", lambda seconds: None)


def _checkpoint(folder, step: int, by: str = ""):
    folder.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        (folder / name).write_text(f"{name} at step {step}{by}")
    return folder


def _restored(job: Job, tmp_path, wanted=checkpoints.LATEST) -> dict[str, str]:
    folder = tmp_path / "restored"
    named = checkpoints.restore(job, folder, wanted)
    return {"step": named["step"], **{p.name: p.read_text() for p in folder.iterdir()}} if named else {}


def _whole(step: int, by: str = "") -> dict:
    return {"step": step, **{name: f"{name} at step {step}{by}" for name in FILES}}


def _taken_over(job: Job) -> Job:
    """The job as a second attempt holds it once the first one's worker went quiet."""
    Job.objects.filter(pk=job.pk).update(attempts=job.attempts + 1)
    return Job.objects.get(pk=job.pk)


def test_no_checkpoint_restores_nothing(job, tmp_path):
    (tmp_path / "restored").mkdir()
    (tmp_path / "restored" / "stale.bin").write_text("a partial folder from an earlier attempt on this host")
    assert checkpoints.restore(job, tmp_path / "restored") is None
    assert not (tmp_path / "restored").exists()


def test_the_last_whole_checkpoint_is_restored_and_older_ones_are_removed(job, tmp_path):
    for step in (20, 40):
        checkpoints.upload(job, _checkpoint(tmp_path / f"s{step}", step), step)
    assert _restored(job, tmp_path) == _whole(40)
    folder = checkpoints.manifest(job)["folder"]
    assert folder == checkpoints.prefix(job) + "step-000000040-a1/"
    assert storage.list_keys(checkpoints.prefix(job)) == sorted(
        [checkpoints.prefix(job) + checkpoints.MANIFEST, *(folder + name for name in FILES)])


def test_a_host_killed_mid_upload_leaves_the_previous_checkpoint_whole(job, tmp_path, monkeypatch):
    checkpoints.upload(job, _checkpoint(tmp_path / "s20", 20), 20)
    upload, uploaded = storage.upload_file, []

    def dies_after_one_file(path, key, **kwargs):
        if uploaded:
            raise SystemExit("killed")
        uploaded.append(key)
        return upload(path, key, **kwargs)

    monkeypatch.setattr(storage, "upload_file", dies_after_one_file)
    with pytest.raises(SystemExit):
        checkpoints.upload(job, _checkpoint(tmp_path / "s40", 40), 40)
    monkeypatch.undo()
    monkeypatch.setattr(checkpoints.time, "sleep", lambda seconds: None)

    assert uploaded == [checkpoints.prefix(job) + "step-000000040-a1/" + FILES[0]]  # step 40's weights reached S3
    assert _restored(job, tmp_path) == _whole(20)
    # The next attempt writes step 40 again, whole, and the job's cleanup removes every key, partial ones too.
    again = _taken_over(job)
    checkpoints.upload(again, _checkpoint(tmp_path / "s40", 40, by=" again"), 40)
    assert _restored(again, tmp_path) == _whole(40, by=" again")
    checkpoints.delete_all(again)
    assert storage.list_keys(checkpoints.prefix(job)) == []


def test_an_attempt_that_was_taken_over_changes_nothing(job, tmp_path):
    """Its worker stalled past the stale limit while uploading: the new attempt owns the manifest now."""
    checkpoints.upload(job, _checkpoint(tmp_path / "s20", 20), 20)
    current = _taken_over(job)
    assert _restored(current, tmp_path) == _whole(20)
    with pytest.raises(JobLost):
        checkpoints.upload(job, _checkpoint(tmp_path / "s40", 40, by=" late"), 40)
    assert _restored(current, tmp_path) == _whole(20)
    checkpoints.upload(current, _checkpoint(tmp_path / "s40b", 40), 40)  # the same step, keys of its own
    assert _restored(current, tmp_path) == _whole(40)


def test_a_checkpoint_replaced_while_it_is_read_is_read_again(job, tmp_path, monkeypatch):
    """An attempt still running (until its next heartbeat) may write a newer checkpoint and remove the one this
    attempt started reading: it reads the new manifest rather than failing or mixing the two."""
    checkpoints.upload(job, _checkpoint(tmp_path / "s20", 20), 20)
    download, replaced = storage.download_file, []

    def replaced_meanwhile(key, path):
        if not replaced:
            replaced.append(key)
            checkpoints.upload(job, _checkpoint(tmp_path / "s40", 40), 40)
        return download(key, path)

    monkeypatch.setattr(storage, "download_file", replaced_meanwhile)
    assert _restored(job, tmp_path) == _whole(40)


def test_a_manifest_naming_files_that_are_gone_fails_clearly(job, tmp_path):
    checkpoints.upload(job, _checkpoint(tmp_path / "s20", 20), 20)
    storage.delete(checkpoints.manifest(job)["folder"] + FILES[1])
    with pytest.raises(CheckpointDamaged, match="step 20 names files that are not in S3.*resubmit"):
        checkpoints.restore(job, tmp_path / "restored")


def test_a_checkpoint_that_never_holds_still_fails_clearly(job, tmp_path, monkeypatch):
    checkpoints.upload(job, _checkpoint(tmp_path / "s20", 20), 20)
    steps = iter(range(40, 400, 20))

    def always_replaced(key, path):
        step = next(steps)
        checkpoints.upload(job, _checkpoint(tmp_path / f"s{step}", step), step)
        raise storage.ObjectMissing(key)

    monkeypatch.setattr(storage, "download_file", always_replaced)
    with pytest.raises(CheckpointDamaged, match="kept changing"):
        checkpoints.restore(job, tmp_path / "restored")


def test_a_further_node_restores_node_0_s_checkpoint_not_a_newer_one(job, tmp_path):
    checkpoints.upload(job, _checkpoint(tmp_path / "s20", 20), 20)
    node_0 = checkpoints.restore(job, tmp_path / "node0")
    assert _restored(job, tmp_path, wanted=node_0) == _whole(20)
    assert _restored(job, tmp_path, wanted=None) == {} and not (tmp_path / "restored").exists()
    checkpoints.upload(job, _checkpoint(tmp_path / "s40", 40), 40)  # node 0 has moved on: step 20 is removed
    with pytest.raises(CheckpointDamaged, match="step 20 is incomplete"):
        checkpoints.restore(job, tmp_path / "late-node", node_0)


def test_a_manifest_from_before_per_step_keys_is_still_read(job, tmp_path):
    prefix = checkpoints.prefix(job)
    for name in FILES:
        storage.upload_bytes(f"{name} at step 20".encode(), prefix + name)
    storage.upload_bytes(json.dumps({"step": 20, "files": list(FILES)}).encode(), prefix + checkpoints.MANIFEST)
    assert _restored(job, tmp_path) == _whole(20)
    checkpoints.upload(job, _checkpoint(tmp_path / "s40", 40), 40)  # the first per-step one replaces it
    assert _restored(job, tmp_path) == _whole(40)
