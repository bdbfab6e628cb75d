"""`weights="int8"` on generation and evaluation jobs (#22): opt-in, named on the job, the datasets and the
evaluation, CPU only; the default stays exact fp32."""

import json

import pytest

from modelcore import quantize
from registry import storage
from registry.models import EvalResult
from workers import bridge, evaluation, generation, jobs, services
from workers.errors import JobParamsInvalid
from workers.job_params import params_validate
from workers.models import Job

from .test_generate_output_dataset import SPLITS


def _generate_params(**extra) -> dict:
    return params_validate("generate_output_dataset", {"model_size": "tiny-1", "splits": SPLITS, "max_length": 20,
                                                       "shard_size": 10, "reference": False, **extra})


def test_the_job_s_weight_choices_are_modelcore_s():
    assert bridge.WEIGHTS == quantize.WEIGHTS


def test_weights_default_to_fp32_and_int8_is_refused_on_cuda(tiny_size):
    assert _generate_params()["weights"] == "fp32"
    assert _generate_params(weights="int8")["weights"] == "int8"
    with pytest.raises(JobParamsInvalid) as refused:
        _generate_params(weights="int8", device="cuda")
    assert "CPU only" in str(refused.value.extra["fields"]["weights"])
    with pytest.raises(JobParamsInvalid) as unknown:
        _generate_params(weights="int4")
    assert "weights" in unknown.value.extra["fields"]


def test_an_int8_shard_samples_the_int8_model_reproducibly(tiny_size):
    """The shard's records are what modelcore samples with int8 weights on the fixed torch path, the same from
    one run to the next, and not the fp32 model's."""
    from modelcore import kernels
    from modelcore.sample import generate

    params = _generate_params(weights="int8")
    shard = generation.plan_shards(params)[3]
    for prefix in ("t/int8-a/", "t/int8-b/"):
        # As in another worker process: the model loaded and quantized afresh.
        bridge._load.cache_clear()
        quantize._prepared.clear()
        generation.shard_run(prefix=prefix, shard=shard, params=params)
    first = storage.read_bytes(generation.shard_key("t/int8-a/", shard))
    assert first == storage.read_bytes(generation.shard_key("t/int8-b/", shard))
    generation.shard_run(prefix="t/fp32/", shard=shard, params=_generate_params())
    assert first != storage.read_bytes(generation.shard_key("t/fp32/", shard))

    model, tokenizer, _config = bridge.load_model(generation._revision(params))
    setting = generation.SAMPLINGS[shard.sampling]
    expected = generate(model, n_samples=shard.count, batch_size=min(generation.GENERATION_BATCH, shard.count),
                        max_new_tokens=20, temperature=setting["temperature"], top_k=setting["top_k"],
                        top_p=setting["top_p"], seed=shard.seed, eot_id=tokenizer.eot_id,
                        layout=kernels.FIXED_LAYOUT, fused_step=False, weights="int8")
    texts = [json.loads(line)["text"] for line in first.decode().splitlines()]
    assert texts == [tokenizer.decode(sample.tokens) for sample in expected]


def test_the_dataset_card_names_int8_weights(tiny_size):
    revision = generation._revision(_generate_params())
    setting = {"top_k": 40, "device": "cpu", "precision": "fp32"}
    assert "int8" not in generation._generated_card(revision, setting, 20)
    card = generation._generated_card(revision, {**setting, "weights": "int8"}, 20)
    assert "in fp32 with int8 weights (per-row scales)" in card


def test_an_evaluation_name_too_long_once_recorded_is_refused_before_it_runs(tiny_size, corpus_file):
    params = {"model_size": "tiny-1", "corpus": str(corpus_file), "name": "x" * 90}
    assert params_validate("evaluate", {**params, "weights": "fp32"})["name"] == "x" * 90
    with pytest.raises(JobParamsInvalid) as refused:
        params_validate("evaluate", {**params, "weights": "int8"})
    assert "At most 100 characters as recorded" in str(refused.value.extra["fields"]["name"])


def test_datasets_from_jobs_before_weights_were_recorded_read_as_fp32(tiny_size):
    from registry.datasets.selectors import PURE, sampling_label

    assert sampling_label({"temperature": 1.0, "top_k": 0, "top_p": 1.0}) == PURE
    assert sampling_label({"temperature": 1.0, "top_k": 0, "top_p": 1.0, "weights": "fp32"}) == PURE
    assert sampling_label({"temperature": 1.0, "top_k": 0, "top_p": 1.0, "weights": "int8"}) is None  # not GPT-2's
    old = {k: v for k, v in _generate_params().items() if k != "weights"}  # a job submitted before
    shard = generation.plan_shards(old)[0]
    assert generation.shard_run(prefix="t/old/", shard=shard, params=old)


def test_an_int8_evaluation_is_recorded_under_its_own_name(tiny_size, corpus_file):
    submitted = {"model_size": "tiny-1", "corpus": str(corpus_file), "name": "Speeches"}
    results = {}
    for weights in ("fp32", "int8"):
        job = services.job_submit(kind="evaluate", params={**submitted, "weights": weights})
        results[weights] = evaluation.evaluate_job_run(job=jobs.job_claim(job.pk))
    assert results["fp32"]["dataset"] == "Speeches" and results["int8"]["dataset"] == "Speeches (int8 weights)"
    assert results["int8"]["weights"] == "int8"
    recorded = dict(EvalResult.objects.filter(model_size=tiny_size, metric="perplexity")
                    .values_list("dataset", "value"))
    assert recorded == {"Speeches": results["fp32"]["perplexity"],
                        "Speeches (int8 weights)": results["int8"]["perplexity"]}
    assert results["int8"]["perplexity"] != results["fp32"]["perplexity"]
    assert results["int8"]["perplexity"] == pytest.approx(results["fp32"]["perplexity"], rel=0.01)
    assert Job.objects.get(pk=job.pk).params["weights"] == "int8"
