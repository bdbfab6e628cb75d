"""modelcore on a CUDA device (issue #21): sampling in bf16 and training, checked against the CPU's exact fp32.
Marked `cuda` and skipped where there is no CUDA device; run on a GPU machine whenever one is available:

    python3 -m pytest -o addopts= --confcutdir=tests/modelcore -m cuda tests/modelcore/test_cuda.py

(`--confcutdir` keeps the Django suite's conftest out: these need torch, safetensors and tokenizers only.)

Tolerances: bf16 keeps 8 bits of mantissa, a relative 4e-3 per rounding; over 2 layers of 32 dims the
log-probabilities of a random model move by a few hundredths. We allow 0.1 nats on every log-probability.
"""

import pytest
import torch

from modelcore.model import GPT
from modelcore.sample import generate
from modelcore.train import TrainSettings, train

from .conftest import TEXT

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")]
LOGPROB_TOLERANCE = 0.1


def test_bf16_log_probabilities_on_cuda_match_fp32_on_the_cpu(config):
    torch.manual_seed(0)
    model = GPT(config).eval()
    tokens = torch.randint(config.n_vocab, (4, config.n_ctx))
    with torch.no_grad():
        exact = torch.log_softmax(model(tokens)[0].float(), dim=-1)
        gpu = model.to("cuda")
        with torch.autocast("cuda", dtype=torch.bfloat16):
            fast = torch.log_softmax(gpu(tokens.cuda())[0].float(), dim=-1).cpu()
    assert (fast - exact).abs().max().item() < LOGPROB_TOLERANCE


def test_sampling_on_cuda_is_valid_and_repeats_with_its_seed(config, tokenizer):
    torch.manual_seed(0)
    model = GPT(config)
    runs = [generate(model, n_samples=6, batch_size=3, max_new_tokens=20, top_k=40, seed=7,
                     eot_id=tokenizer.eot_id, device="cuda") for _ in range(2)]
    assert [s.tokens for s in runs[0]] == [s.tokens for s in runs[1]]
    for sample in runs[0]:
        assert sample.length == len(sample.tokens) <= 20
        assert all(0 <= t < config.n_vocab for t in sample.tokens)
        assert sample.ended or sample.length == 20


def test_training_on_cuda_learns_and_its_checkpoint_resumes_on_the_cpu(config, tokenizer, tmp_path):
    ids = torch.tensor(tokenizer.encode(TEXT))
    settings = TrainSettings(steps=40, batch_size=8, lr=3e-3, warmup=4, eval_interval=20, eval_batches=2,
                             checkpoint_interval=20, seed=3, device="cuda")
    on_gpu = train(config, ids[:-2000], ids[-2000:], settings, checkpoint_dir=tmp_path / "checkpoint")
    assert on_gpu.loss_curve[-1]["train_loss"] < on_gpu.loss_curve[0]["train_loss"] - 0.5
    more = TrainSettings(**{**settings.__dict__, "steps": 50, "device": "cpu"})
    resumed = train(config, ids[:-2000], ids[-2000:], more, checkpoint_dir=tmp_path / "checkpoint")
    assert resumed.resumed_from == 40 and len(resumed.loss_curve) == 50
    assert abs(resumed.loss_curve[40]["train_loss"] - on_gpu.loss_curve[-1]["train_loss"]) < 0.5
