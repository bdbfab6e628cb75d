"""The `evaluate` job: a trained revision scored on a held-out text, its figures recorded in the registry.

WikiText-2 is detokenised before our tokenizer sees it and scored per WikiText token (modelcore/wikitext.py),
so models with different tokenizers compare. Bits per byte are over the detokenised text's UTF-8 bytes.
"""

import math
import time

from modelcore.wikitext import wikitext_detokenize, wikitext_tokens
from registry import services as registry_services
from registry.models import Revision
from workers import bridge, inputs, jobs
from workers.models import Job

FORMATS = ("plain", "wikitext")
def evaluation_name(name: str, weights: str) -> str:
    """What an evaluation is recorded as: its name, and for reduced-precision weights which ones."""
    return name if weights == "fp32" else f"{name} ({weights} weights)"


def evaluate_job_run(*, job: Job) -> dict:
    from modelcore import quantize
    from modelcore.evaluate import evaluate_text

    params = job.params
    revision = Revision.objects.select_related("model_size", "training_run").get(
        model_size__slug=params["model_size"], revision=params["revision"])
    model, tokenizer, config = bridge.load_model(revision)
    weights = params.get("weights", "fp32")
    model, _int8 = quantize.with_weights(model, weights)  # int8: the values a weights=int8 generation samples
    name = evaluation_name(params["name"], weights)
    raw = inputs.corpus_text(job)
    text = wikitext_detokenize(raw) if params["format"] == "wikitext" else raw
    last_beat = [0.0]

    def on_progress(done: int, total: int) -> None:
        if time.monotonic() - last_beat[0] >= 5 or done == total:
            last_beat[0] = time.monotonic()
            jobs.job_heartbeat(job, done=done, total=total, unit="windows")  # raises JobLost if cancelled

    report = evaluate_text(model, tokenizer, text, stride=config.n_ctx // 2, batch_size=8, on_progress=on_progress)
    nats = report.loss * report.tokens
    figures = {"bits_per_byte": report.bits_per_byte, "token_perplexity": report.perplexity}
    words = wikitext_tokens(raw)
    if params["format"] == "wikitext":
        figures["perplexity"] = math.exp(nats / words)  # per WikiText token
    else:
        figures["perplexity"] = report.perplexity
    recorded = {}
    for metric in ("perplexity", "bits_per_byte"):
        result = registry_services.eval_result_record(
            size=revision.model_size, dataset=name, metric=metric, value=figures[metric],
            training_run=revision.training_run, revision=revision, actor=job.created_by)
        recorded[metric] = result.pk
    return {**figures, "tokens": report.tokens, "bytes": report.bytes, "words": words,
            "eval_results": recorded, "revision": revision.revision, "dataset": name, "weights": weights}
