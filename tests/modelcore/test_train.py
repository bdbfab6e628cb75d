import json
import logging
import math
import struct
from pathlib import Path

import pytest
import torch

from modelcore import products
from modelcore import train as train_module
from modelcore.model import GPTConfig
from modelcore.train import (
    TrainSettings,
    cpu_has_fast_bf16_products,
    get_batch,
    learning_rate,
    load_checkpoint_model,
    optimizer_for,
    train,
)

from .conftest import TEXT

SETTINGS = TrainSettings(steps=8, batch_size=4, lr=1e-2, warmup=2, grad_accum=2, eval_interval=3, eval_batches=2,
                         checkpoint_interval=4, seed=11, threads=0)  # fmt: skip


class Interrupted(Exception):
    pass


@pytest.fixture(scope="module")
def tokens(tokenizer):
    ids = tokenizer.encode(TEXT)
    return ids[: len(ids) * 9 // 10], ids[len(ids) * 9 // 10 :]


@pytest.fixture(scope="module")
def dropout_config(config):
    # Dropout draws from the global RNG, so an exact resume must restore that state too.
    return GPTConfig(**{**config.to_hparams(), "dropout": 0.1})


def assert_same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for name in sa:
        assert torch.equal(sa[name], sb[name]), name


def test_an_interrupted_and_resumed_run_ends_with_the_same_weights(dropout_config, tokens, tmp_path):
    uninterrupted = train(dropout_config, *tokens, SETTINGS)

    def stop_at_step_6(step, total, metrics):
        if step == 6:
            raise Interrupted  # after the checkpoint of step 4

    with pytest.raises(Interrupted):
        train(dropout_config, *tokens, SETTINGS, checkpoint_dir=tmp_path / "ckpt", on_progress=stop_at_step_6)
    resumed = train(dropout_config, *tokens, SETTINGS, checkpoint_dir=tmp_path / "ckpt")

    assert resumed.resumed_from == 4
    assert_same_weights(resumed.model, uninterrupted.model)
    strip = [{k: v for k, v in r.items() if k != "elapsed_s"} for r in resumed.loss_curve]
    assert strip == [{k: v for k, v in r.items() if k != "elapsed_s"} for r in uninterrupted.loss_curve]
    assert resumed.final_val_loss == uninterrupted.final_val_loss


def test_resume_false_starts_afresh(config, tokens, tmp_path):
    short = TrainSettings(**{**SETTINGS.__dict__, "steps": 4})
    train(config, *tokens, short, checkpoint_dir=tmp_path)
    assert train(config, *tokens, short, checkpoint_dir=tmp_path, resume=False).resumed_from is None


def test_a_checkpoint_is_safetensors_and_json_and_reloads_identically(config, tokens, tmp_path):
    seen = []
    result = train(config, *tokens, SETTINGS, checkpoint_dir=tmp_path / "ckpt",
                   on_checkpoint=lambda path, step: seen.append((path, step)))  # fmt: skip
    assert [step for _, step in seen] == [4, 8]
    path = seen[-1][0]
    assert sorted(p.name for p in path.iterdir()) == [
        "model.safetensors",
        "optimizer.safetensors",
        "state.json",
    ]
    for name in ("model.safetensors", "optimizer.safetensors"):
        with open(path / name, "rb") as f:
            (header_size,) = struct.unpack("<Q", f.read(8))
            assert json.loads(f.read(header_size))  # a safetensors header, not a pickle
    state = json.loads((path / "state.json").read_text())
    assert (state["step"], state["data_position"]) == (8, 8 * SETTINGS.grad_accum)
    assert_same_weights(load_checkpoint_model(path), result.model)
    assert not list(tmp_path.glob("*.partial")) and not list(tmp_path.glob("*.old"))


def test_resuming_with_another_config_is_refused(config, tokens, tmp_path):
    train(config, *tokens, TrainSettings(**{**SETTINGS.__dict__, "steps": 4}), checkpoint_dir=tmp_path)
    wider = GPTConfig(**{**config.to_hparams(), "n_embd": 48})
    with pytest.raises(ValueError, match="checkpoint is for"):
        train(wider, *tokens, SETTINGS, checkpoint_dir=tmp_path)


def test_progress_is_reported_every_step_with_validation_at_eval_steps(config, tokens):
    calls = []
    result = train(config, *tokens, SETTINGS, on_progress=lambda *args: calls.append(args))
    assert [(step, total) for step, total, _ in calls] == [(s, 8) for s in range(1, 9)]
    assert [r["step"] for r in result.loss_curve if "val_loss" in r] == [3, 6, 8]
    assert result.final_val_loss == result.loss_curve[-1]["val_loss"]
    assert all(math.isfinite(r["train_loss"]) for r in result.loss_curve)


def test_training_lowers_the_validation_loss(config, tokens):
    settings = TrainSettings(steps=40, batch_size=8, lr=3e-3, warmup=5, eval_interval=40, eval_batches=4)
    result = train(config, *tokens, settings)
    assert result.final_val_loss < 0.6 * math.log(config.n_vocab)  # well below a uniform guess


def test_learning_rate_warms_up_linearly_then_follows_a_cosine_to_its_floor():
    s = TrainSettings(steps=110, lr=1.0, warmup=10, min_lr_ratio=0.1)
    assert [learning_rate(i, s) for i in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])
    assert learning_rate(60, s) == pytest.approx(0.55)  # half way down the cosine
    assert learning_rate(110, s) == pytest.approx(0.1)
    lrs = [learning_rate(i, s) for i in range(10, 111)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:], strict=False))


def test_weight_decay_spares_biases_and_layernorm_gains(model):
    decay, no_decay = optimizer_for(model, SETTINGS).param_groups
    names = {id(p): n for n, p in model.named_parameters()}
    assert decay["weight_decay"] == SETTINGS.weight_decay and no_decay["weight_decay"] == 0.0
    assert {names[id(p)] for p in no_decay["params"]} == {
        n for n, p in model.named_parameters() if p.dim() == 1
    }
    assert "wte.weight" in {names[id(p)] for p in decay["params"]}


def test_batches_are_a_function_of_seed_and_position():
    tokens = torch.arange(1000)
    x, y = get_batch(tokens, 4, 16, seed=1, index=5)
    assert x.shape == y.shape == (4, 16)
    assert torch.equal(y[:, :-1], x[:, 1:]) and torch.equal(y[:, -1], x[:, -1] + 1)  # targets shift by one
    assert torch.equal(get_batch(tokens, 4, 16, seed=1, index=5)[0], x)
    assert not torch.equal(get_batch(tokens, 4, 16, seed=1, index=6)[0], x)


def test_invalid_settings_are_refused(config, tokens):
    with pytest.raises(ValueError, match="grad_accum"):
        train(config, *tokens, TrainSettings(grad_accum=0))
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16, got 'fp16'"):
        train(config, *tokens, TrainSettings(precision="fp16"))


@pytest.mark.parametrize(("precision", "device", "computes_in"), [
    ("auto", "cpu", "fp32"), ("auto", "cuda", "bf16"), ("bf16", "cpu", "bf16"), ("fp32", "cuda", "fp32")])
def test_precision_auto_is_fp32_on_cpu_and_bf16_on_cuda(precision, device, computes_in):
    assert TrainSettings(precision=precision, device=device).computes_in == computes_in


def test_bf16_training_on_cpu_runs_its_products_in_bf16_and_learns_as_fp32_does(config, tokens, monkeypatch):
    dtypes = set()
    real_linear, real_product = torch.nn.functional.linear, products.mm

    def recording_linear(x, weight, bias=None):  # the linears' products in fp32
        out = real_linear(x, weight, bias)
        dtypes.add(out.dtype)
        return out

    def recording_product(a, b, **kwargs):  # training_ops' (Bf16Linear's and the output layer's)
        out = real_product(a, b, **kwargs)
        dtypes.add(out.dtype)
        return out

    monkeypatch.setattr(torch.nn.functional, "linear", recording_linear)
    monkeypatch.setattr(products, "mm", recording_product)
    settings = TrainSettings(steps=40, batch_size=8, lr=3e-3, warmup=5, eval_interval=20, eval_batches=4)
    exact = train(config, *tokens, settings)
    assert dtypes == {torch.float32}
    dtypes.clear()
    mixed = train(config, *tokens, TrainSettings(**{**settings.__dict__, "precision": "bf16"}))
    assert dtypes == {torch.bfloat16}
    # Master weights stay fp32; the curve follows fp32's within bf16's rounding.
    assert {p.dtype for p in mixed.model.parameters()} == {torch.float32}
    assert mixed.final_val_loss == pytest.approx(exact.final_val_loss, rel=0.03)
    assert mixed.final_val_loss < 0.6 * math.log(config.n_vocab)


@pytest.mark.skipif(not Path("/proc/cpuinfo").is_file(), reason="reads the CPU's flags from Linux's /proc/cpuinfo")
def test_fast_bf16_products_are_those_of_an_avx512_cpu():
    # oneDNN takes torch's bf16 products from AVX-512 (F, BW, VL, DQ) up; below that torch's scalar loops do.
    flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    flags = set(flags.split(":", 1)[1].split())
    avx512 = {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags
    if not avx512 and "avx_ne_convert" in flags:
        pytest.skip("newer oneDNN also takes bf16 products from AVX2-VNNI-2 (AVX-NE-CONVERT), none of our draws")
    assert cpu_has_fast_bf16_products() == avx512


@pytest.mark.parametrize(("fast", "precision", "warned"), [
    (False, "bf16", True), (True, "bf16", False), (False, "fp32", False), (False, "auto", False)])
def test_bf16_training_warns_on_a_cpu_that_emulates_its_products(config, tokens, monkeypatch, caplog,
                                                                 fast, precision, warned):
    monkeypatch.setattr(train_module, "cpu_has_fast_bf16_products", lambda: fast)
    with caplog.at_level(logging.WARNING, logger="modelcore.train"):
        result = train(config, *tokens, TrainSettings(steps=1, batch_size=2, warmup=1, precision=precision))
    assert len(result.loss_curve) == 1  # a warning, not a refusal: the run trains
    assert any("precision=fp32 or auto trains faster here" in r.message for r in caplog.records) == warned


def test_a_bf16_run_resumes_exactly(config, tokens, tmp_path):
    settings = TrainSettings(**{**SETTINGS.__dict__, "precision": "bf16"})
    uninterrupted = train(config, *tokens, settings)

    def stop_at_step_6(step, total, metrics):
        if step == 6:
            raise Interrupted

    with pytest.raises(Interrupted):
        train(config, *tokens, settings, checkpoint_dir=tmp_path / "ckpt", on_progress=stop_at_step_6)
    resumed = train(config, *tokens, settings, checkpoint_dir=tmp_path / "ckpt")
    assert resumed.resumed_from == 4
    assert_same_weights(resumed.model, uninterrupted.model)
    assert json.loads((tmp_path / "ckpt" / "state.json").read_text())["settings"]["precision"] == "bf16"
