"""A scaling study end to end on a miniature family, by real worker processes: every step a job, every figure on
the public page read from what those jobs stored, and a rerun that skips what is done."""

import re
from html import unescape

import pytest
from django.core.management import call_command
from django.db import connection
from django.template.defaultfilters import floatformat
from django.test.utils import CaptureQueriesContext

from registry import services as registry_services
from registry.models import DetectionResult, EvalResult, ModelSize, OutputDataset, TrainingRun
from releases.stage_names import Stage
from workers.models import Job, Study, StudyStep
from workers.statistics import bootstrap_interval
from workers.study import figures, plan

pytestmark = pytest.mark.integration
HPARAMS = {"n_vocab": 320, "n_ctx": 64, "n_head": 2}
# WikiText's own layout (spaced punctuation, @-@), so the detokenising path runs too.
EVAL_TEXT = "\n".join(f" = Heading {i} = \n To be , or not to be @-@ that is the question . " for i in range(60))


@pytest.fixture
def tiny_family(transactional_db, s3, corpus_file):
    family = registry_services.family_upsert(slug="tiny", name="Tiny", bundled=True)
    for order, (width, layers) in enumerate(((16, 1), (32, 2))):
        registry_services.model_size_upsert(family=family, slug=f"tiny-{order + 1}", display_name=f"{order + 1}",
                                            order=order, hparams={**HPARAMS, "n_embd": width, "n_layer": layers})
    (corpus_file.parent / "eval.txt").write_text(EVAL_TEXT)
    return family


def _settings(corpus_file) -> dict:
    return {"name": "tiny-study", "family": "tiny", "corpus": str(corpus_file), "eval_corpus": "eval.txt",
            "max_tokens": 3 * 4 * 64, "batch_size": 4, "lr": 3e-3, "samples": {"train": 30, "valid": 10, "test": 12},
            "max_length": 16}


def _cells(html: str) -> dict[str, dict[str, str]]:
    """{size slug: {figure: text}} from the study page's table."""
    rows = {}
    for slug, body in re.findall(r'<tr data-size="([^"]+)">(.*?)</tr>', html, re.S):
        rows[slug] = {name: unescape(re.sub(r"<[^>]+>", "", cell)).strip()
                      for name, cell in re.findall(r'<td data-figure="([^"]+)">(.*?)</td>', body, re.S)}
    return rows


def test_a_study_runs_every_step_as_a_job_and_its_page_shows_stored_figures(
        tiny_family, corpus_file, worker_process, client, alice):
    worker_process("w1")
    call_command("study", **_settings(corpus_file), timeout=600)

    study = Study.objects.get(name="tiny-study")
    assert study.finished_at is not None and study.job.status == Job.Status.SUCCEEDED
    keys = set(study.steps.values_list("key", flat=True))
    assert keys == {f"{kind}:tiny-{n}" for kind in ("train", "evaluate", "generate") for n in (1, 2)} | {
        f"baseline:tiny-{n}:{s}" for n in (1, 2) for s in ("pure", "k40")}
    assert all(step.job.status == Job.Status.SUCCEEDED for step in study.steps.select_related("job"))
    # One compute rule: every size capped at max_tokens, so the same number of steps.
    trains = [s.job for s in study.steps.select_related("job") if s.key.startswith("train:")]
    assert {job.params["steps"] for job in trains} == {3}
    # All steps read the study's own copy of its corpora, the same bytes.
    assert study.corpora["corpus"].startswith("s3://corpora/studies/tiny-study/")
    assert {job.inputs["corpus_sha256"] for job in trains} == {study.corpora["corpus_sha256"]}
    human = OutputDataset.objects.get(name="tiny-study-human")
    assert human.kind == OutputDataset.Kind.REFERENCE
    for result in DetectionResult.objects.filter(dataset__name__startswith="tiny-study-"):
        assert result.reference == human
        outcomes = [int(c) for c in result.test_outcomes]
        assert len(outcomes) == 2 * result.test_pairs and sum(outcomes) / len(outcomes) == result.accuracy
        assert (result.accuracy_low, result.accuracy_high) == bootstrap_interval(outcomes)

    # The page: figures follow what they are about. Internal sizes are left out for the public; a released size
    # shows, but its detection figures only once its datasets are released too.
    public = client.get("/study/").content.decode()
    assert "tiny-study" in public and "data-size=" not in public
    ModelSize.objects.filter(slug="tiny-1").update(stage=Stage.PUBLIC)
    rows = _cells(client.get("/study/tiny-study/").content.decode())
    assert set(rows) == {"tiny-1"} and rows["tiny-1"]["pure"] == "—" and rows["tiny-1"]["val_loss"] != "—"
    OutputDataset.objects.filter(name="tiny-study-tiny-1").update(stage=Stage.PUBLIC)
    rows = _cells(client.get("/study/tiny-study/").content.decode())
    assert rows["tiny-1"]["pure"] != "—" and rows["tiny-1"]["k40"] == "—"
    client.force_login(alice)
    page = client.get("/study/tiny-study/")
    assert page.status_code == 200
    cells = _cells(page.content.decode())
    assert set(cells) == {"tiny-1", "tiny-2"}
    for slug, shown in cells.items():
        run = TrainingRun.objects.get(pk=study.steps.get(key=f"train:{slug}").job.result["training_run"])
        assert shown["val_loss"] == floatformat(run.final_val_loss, 4)
        held_out = dict(EvalResult.objects.filter(training_run=run).exclude(dataset=plan.WIKITEXT_NAME)
                        .values_list("metric", "value"))
        assert shown["held_out_perplexity"] == floatformat(held_out["perplexity"], 2)
        wikitext = dict(EvalResult.objects.filter(model_size__slug=slug, dataset=plan.WIKITEXT_NAME)
                        .values_list("metric", "value"))
        assert shown["wikitext_perplexity"] == floatformat(wikitext["perplexity"], 1)
        assert shown["wikitext_bits_per_byte"] == floatformat(wikitext["bits_per_byte"], 4)
        for sampling, suffix in (("pure", ""), ("k40", "-k40")):
            result = DetectionResult.objects.get(dataset__name=f"tiny-study-{slug}{suffix}")
            assert shown[sampling] == (f"{result.accuracy:.1%} ({result.accuracy_low:.1%}–"
                                       f"{result.accuracy_high:.1%})")
    # The figures are read in one query per kind of record, however many sizes (no query per size).
    with CaptureQueriesContext(connection) as queries:
        figures.study_figures(study)
    assert len(queries) <= 7, [q["sql"][:80] for q in queries]
    for kind in ("language", "detection"):
        plot = client.get(f"/study/tiny-study/plots/{kind}.svg")
        assert plot.status_code == 200 and plot["Content-Type"] == "image/svg+xml"

    # Run again: nothing is redone.
    jobs_before = Job.objects.count()
    call_command("study", name="tiny-study", timeout=120)
    assert Job.objects.count() == jobs_before + 1  # the new study job only
    assert StudyStep.objects.filter(study=study).count() == len(keys)
    assert Study.objects.get(name="tiny-study").job.status == Job.Status.SUCCEEDED
