"""Data-parallel training (issue #21): two gloo processes on this CPU against one process with the same global
batch and seed. A step is defined by its micro-batches, so the two must agree at every logged step, and a
2-process checkpoint resumes with 1 process at the same step.

Tolerance: the runs may differ only in the order floating-point sums are taken (DDP sums the ranks' gradients
and divides by the world size; one process adds up gradients already divided by its accumulation), about 1e-7
relative per step, compounded by training. With two ranks the division by two is exact and the runs agree to
the bit (measured: 0.0 on every loss and weight); we allow 1e-4 absolute on every loss and weight, so the test
also holds for layouts whose sums do round differently.
"""

import pytest
import torch

from modelcore.data_parallel import Rendezvous, train_data_parallel
from modelcore.train import TrainSettings, train

from .conftest import TEXT

LOSS_TOLERANCE = WEIGHT_TOLERANCE = 1e-4
STEPS = 12


def _settings(grad_accum: int, **changes) -> TrainSettings:
    return TrainSettings(**{"steps": STEPS, "batch_size": 4, "lr": 1e-2, "warmup": 2, "grad_accum": grad_accum,
                            "eval_interval": 4, "eval_batches": 4, "checkpoint_interval": 6, "seed": 5, "threads": 1,
                            **changes})


@pytest.fixture(scope="module")
def tokens(tokenizer):
    ids = tokenizer.encode(TEXT)
    return torch.tensor(ids[: len(ids) * 9 // 10]), torch.tensor(ids[len(ids) * 9 // 10 :])


@pytest.fixture(scope="module")
def single(config, tokens):
    """The reference: one process, two micro-batches per step."""
    return train(config, *tokens, _settings(grad_accum=2))


def _assert_same_run(curve, reference, *, from_step: int = 1):
    ours = {r["step"]: r for r in curve}
    for expected in reference:
        if expected["step"] < from_step:
            continue
        got = ours[expected["step"]]
        assert abs(got["train_loss"] - expected["train_loss"]) < LOSS_TOLERANCE, (got, expected)
        assert got["lr"] == expected["lr"]
        if "val_loss" in expected:
            assert abs(got["val_loss"] - expected["val_loss"]) < LOSS_TOLERANCE, (got, expected)


def _assert_close_weights(a, b):
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert (x - y).abs().max().item() < WEIGHT_TOLERANCE, name


def test_two_processes_train_as_one_with_the_same_global_batch(config, tokens, single, tmp_path):
    result = train_data_parallel(config, *tokens, _settings(grad_accum=1), Rendezvous(nproc=2, timeout_s=60),
                                 work_dir=tmp_path / "work", checkpoint_dir=tmp_path / "checkpoint")
    assert [r["step"] for r in result.loss_curve] == list(range(1, STEPS + 1))
    _assert_same_run(result.loss_curve, single.loss_curve)
    _assert_close_weights(result.model, single.model)
    assert abs(result.final_val_loss - single.final_val_loss) < LOSS_TOLERANCE


def test_two_processes_train_as_one_in_bf16_with_kept_memory(config, tokens, tmp_path):
    # bf16 on the CPU: the linears, the attention and the tied gradient keep their memory between steps
    # (modelcore/training_ops.py), which DDP's gradient hooks and one process's accumulation must both see.
    reference = train(config, *tokens, _settings(grad_accum=2, precision="bf16"))
    result = train_data_parallel(config, *tokens, _settings(grad_accum=1, precision="bf16"),
                                 Rendezvous(nproc=2, timeout_s=60), work_dir=tmp_path / "work",
                                 checkpoint_dir=tmp_path / "checkpoint")  # fmt: skip
    _assert_same_run(result.loss_curve, reference.loss_curve)
    _assert_close_weights(result.model, reference.model)


class Stopped(Exception):
    pass


def test_a_two_process_checkpoint_resumes_with_one_process_at_the_same_step(config, tokens, single, tmp_path):
    checkpoints = []

    def stop_after_the_checkpoint(step, total, metrics):
        if step == 7:  # the checkpoint at 6 is written; the other rank is left waiting in a collective
            raise Stopped

    with pytest.raises(Stopped):
        train_data_parallel(config, *tokens, _settings(grad_accum=1), Rendezvous(nproc=2, timeout_s=30),
                            work_dir=tmp_path / "work", checkpoint_dir=tmp_path / "checkpoint",
                            on_progress=stop_after_the_checkpoint,
                            on_checkpoint=lambda path, step: checkpoints.append(step))
    assert checkpoints == [6]
    # One process, grad_accum as given (1): the checkpoint says a step is 2 micro-batches, and that wins.
    resumed = train(config, *tokens, _settings(grad_accum=1), checkpoint_dir=tmp_path / "checkpoint")
    assert resumed.resumed_from == 6
    _assert_same_run(resumed.loss_curve, single.loss_curve, from_step=7)
    _assert_close_weights(resumed.model, single.model)


def test_a_step_that_the_processes_cannot_share_evenly_is_refused(config, tokens, tmp_path):
    train(config, *tokens, _settings(grad_accum=3, steps=6), checkpoint_dir=tmp_path / "checkpoint")
    with pytest.raises(ValueError, match="3 micro-batches, which 2 processes cannot share"):
        train_data_parallel(config, *tokens, _settings(grad_accum=1, steps=12), Rendezvous(nproc=2, timeout_s=30),
                            work_dir=tmp_path / "work", checkpoint_dir=tmp_path / "checkpoint")


def test_ranks_die_with_a_killed_parent(tmp_path):
    """An OOM kill or a hard time limit SIGKILLs the worker process (rank 0) with no `finally`: its child ranks
    must not train on alone until their collectives time out."""
    import os
    import signal
    import subprocess
    import sys
    import textwrap
    import time
    from pathlib import Path

    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent(f"""
        import sys, torch
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from modelcore.data_parallel import Rendezvous, train_data_parallel
        from modelcore.model import GPTConfig
        from modelcore.train import TrainSettings
        config = GPTConfig(n_vocab=64, n_ctx=32, n_embd=16, n_head=2, n_layer=1)
        tokens = torch.randint(64, (5000,))
        train_data_parallel(config, tokens, None, TrainSettings(steps=10**6, batch_size=2, eval_interval=10**6,
                            checkpoint_interval=10**6, threads=1), Rendezvous(nproc=2, timeout_s=600),
                            work_dir={str(tmp_path / "work")!r}, checkpoint_dir={str(tmp_path / "ckpt")!r},
                            on_progress=lambda step, total, m: step == 3 and print("training", flush=True))
    """))
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert parent.stdout.readline().strip() == "training"

    def children() -> list[int]:
        found = []
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and str(tmp_path).encode() in (entry / "cmdline").read_bytes() \
                        and b"modelcore.data_parallel" in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
        return found

    assert children()
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while children() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not children()
