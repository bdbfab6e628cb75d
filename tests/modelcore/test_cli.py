import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from modelcore.export import import_hf

from .conftest import TEXT

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "modelcore", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("command", [[], ["train"], ["sample"], ["eval"], ["export"]])
def test_help_works_for_every_command(command):
    assert "usage: python -m modelcore" in run(*command, "--help")


def test_train_sample_eval_export_end_to_end(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    out = tmp_path / "model"
    tiny = ["--n-ctx", "32", "--n-embd", "32", "--n-head", "2", "--n-layer", "2", "--vocab-size", "300"]
    schedule = ["--steps", "30", "--batch-size", "8", "--lr", "3e-3", "--warmup", "3", "--eval-interval", "10",
                "--eval-batches", "2", "--checkpoint-interval", "10", "--threads", "1"]  # fmt: skip
    printed = run("train", "--corpus", str(corpus), "--out", str(out), *tiny, *schedule)
    assert "validation loss" in printed
    assert {"config.json", "model.safetensors", "vocab.json", "merges.txt"} <= {p.name for p in out.iterdir()}
    curve = json.loads((out / "loss_curve.json").read_text())
    assert [r["step"] for r in curve] == list(range(1, 31)) and curve[-1]["val_loss"] < curve[0]["train_loss"]

    lines = run("sample", "--model", str(out), "--n-samples", "3", "--max-new-tokens", "20", "--top-k", "40",
                "--jsonl", "--threads", "1").splitlines()  # fmt: skip
    samples = [json.loads(line) for line in lines]
    assert [s["id"] for s in samples] == [0, 1, 2]
    assert all(0 <= s["length"] <= 20 and s["ended"] == (s["length"] < 20) for s in samples)

    report = json.loads(run("eval", "--model", str(out), "--text", str(corpus), "--threads", "1"))
    assert report["bytes"] == len(TEXT.encode()) and 1 < report["perplexity"] < 300
    # Int8 weights: the same text scored within 1% of fp32's, but not identically; sampling at batch 1.
    int8 = json.loads(run("eval", "--model", str(out), "--text", str(corpus), "--threads", "1", "--weights", "int8"))
    assert int8["perplexity"] != report["perplexity"]
    assert int8["perplexity"] == pytest.approx(report["perplexity"], rel=0.01)
    lines = run("sample", "--model", str(out), "--n-samples", "2", "--batch-size", "1", "--max-new-tokens", "20",
                "--jsonl", "--threads", "1", "--weights", "int8").splitlines()  # fmt: skip
    assert [json.loads(line)["id"] for line in lines] == [0, 1]
    refused = subprocess.run([sys.executable, "-m", "modelcore", "eval", "--model", str(out), "--text", str(corpus),
                              "--weights", "int8", "--device", "cuda"], cwd=ROOT, capture_output=True, text=True,
                             timeout=120)  # fmt: skip
    assert refused.returncode == 1 and "evaluates on CPU only" in refused.stderr

    exported = tmp_path / "exported"
    run("export", "--checkpoint", str(out / "checkpoint"), "--tokenizer", str(out), "--out", str(exported))
    final, _, _ = import_hf(out)
    again, _, _ = import_hf(exported)
    for name, tensor in final.state_dict().items():
        assert torch.equal(again.state_dict()[name], tensor), name
