"""A training job's checkpoints in S3: whatever moment a host dies at, the manifest names one whole checkpoint.

Seen in CI: a host killed while uploading step 40 over step 20's keys left step 20's manifest beside step 40's
weights, and the resumed run went on from a model it did not describe."""

import json

import pytest

from registry import storage
from workers import training
from workers.errors import JobLost
from workers.models import Job

FILES = ("model.safetensors", "optimizer.safetensors", "state.json")


@pytest.fixture
def job(db, s3) -> Job:
    return Job.objects.create(kind=Job.Kind.TRAIN, params={"model_size": "mini-1m"})


def _checkpoint(folder, step: int):
    folder.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        (folder / name).write_text(f"{name} at step {step}")
    return folder


def _restored(job: Job, tmp_path) -> dict[str, str]:
    folder = tmp_path / "restored"
    step = training._restore_checkpoint(job, folder)
    return {"step": step, **{p.name: p.read_text() for p in folder.iterdir()}} if step is not None else {}


def test_no_checkpoint_restores_nothing(job, tmp_path):
    assert training._restore_checkpoint(job, tmp_path / "restored") is None


def test_the_last_whole_checkpoint_is_restored_and_older_ones_are_removed(job, tmp_path):
    for step in (20, 40):
        training._upload_checkpoint(job, _checkpoint(tmp_path / f"s{step}", step), step)
    assert _restored(job, tmp_path) == {"step": 40, **{name: f"{name} at step 40" for name in FILES}}
    keys = storage.list_keys(training._checkpoint_prefix(job))
    assert keys == sorted([training._checkpoint_prefix(job) + training.MANIFEST,
                           *(training._step_prefix(job, 40) + name for name in FILES)])


def test_a_host_killed_mid_upload_leaves_the_previous_checkpoint_whole(job, tmp_path, monkeypatch):
    training._upload_checkpoint(job, _checkpoint(tmp_path / "s20", 20), 20)
    upload, uploaded = storage.upload_file, []

    def dies_after_one_file(path, key, **kwargs):
        if uploaded:
            raise SystemExit("killed")
        uploaded.append(key)
        return upload(path, key, **kwargs)

    monkeypatch.setattr(storage, "upload_file", dies_after_one_file)
    with pytest.raises(SystemExit):
        training._upload_checkpoint(job, _checkpoint(tmp_path / "s40", 40), 40)
    monkeypatch.undo()

    assert uploaded == [training._step_prefix(job, 40) + FILES[0]]  # step 40's weights did reach S3
    assert _restored(job, tmp_path) == {"step": 20, **{name: f"{name} at step 20" for name in FILES}}
    # The next attempt writes step 40 again, whole, and the job's cleanup removes every key, partial ones too.
    training._upload_checkpoint(job, _checkpoint(tmp_path / "s40", 40), 40)
    assert _restored(job, tmp_path)["step"] == 40
    training._checkpoints_delete(job)
    assert storage.list_keys(training._checkpoint_prefix(job)) == []


def test_a_checkpoint_replaced_while_it_is_read_is_read_again(job, tmp_path, monkeypatch):
    """An attempt still running (until its next heartbeat) may write a newer checkpoint and remove the one this
    attempt started reading: it reads the new manifest rather than failing or mixing the two."""
    training._upload_checkpoint(job, _checkpoint(tmp_path / "s20", 20), 20)
    download, replaced = storage.download_file, []

    def replaced_meanwhile(key, path):
        if not replaced:
            replaced.append(key)
            training._upload_checkpoint(job, _checkpoint(tmp_path / "s40", 40), 40)
        return download(key, path)

    monkeypatch.setattr(storage, "download_file", replaced_meanwhile)
    assert _restored(job, tmp_path) == {"step": 40, **{name: f"{name} at step 40" for name in FILES}}


def test_a_checkpoint_that_never_holds_still_stops_the_attempt(job, tmp_path, monkeypatch):
    training._upload_checkpoint(job, _checkpoint(tmp_path / "s20", 20), 20)
    steps = iter(range(40, 400, 20))

    def always_replaced(key, path):
        step = next(steps)
        training._upload_checkpoint(job, _checkpoint(tmp_path / f"s{step}", step), step)
        raise storage.ObjectMissing(key)

    monkeypatch.setattr(storage, "download_file", always_replaced)
    with pytest.raises(JobLost, match="kept changing"):
        training._restore_checkpoint(job, tmp_path / "restored")


def test_a_manifest_from_before_per_step_keys_is_still_read(job, tmp_path):
    prefix = training._checkpoint_prefix(job)
    for name in FILES:
        storage.upload_bytes(f"{name} at step 20".encode(), prefix + name)
    storage.upload_bytes(json.dumps({"step": 20, "files": list(FILES)}).encode(), prefix + training.MANIFEST)
    assert _restored(job, tmp_path) == {"step": 20, **{name: f"{name} at step 20" for name in FILES}}
