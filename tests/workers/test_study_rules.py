"""A study's rules without workers: the compute rule, the power estimate, the steps and their order, who may start
one, what a failed or cancelled step does, and the reading the page gives of its numbers."""

import pytest
from django.urls import reverse

from modelcore.wikitext import wikitext_detokenize
from registry.models import ModelSize
from workers import jobs, services
from workers.errors import JobParamsInvalid
from workers.job_params import params_validate
from workers.models import Job, Study, StudyStep
from workers.statistics import bootstrap_interval, detectable_difference, difference_interval, texts_needed
from workers.study import figures, plan, runner


def test_every_mini_size_reaches_the_token_cap_and_trains_the_same_steps(mini_family):
    params = params_validate("study", {"name": "s"})
    assert (params["tokens_per_parameter"], params["max_tokens"]) == (20.0, 1_000_000)
    sizes = plan.family_sizes(params["family"])
    assert [s.slug for s in sizes] == ["mini-1m", "mini-3m", "mini-7m", "mini-13m"]
    assert {plan.train_tokens(params, s) for s in sizes} == {1_000_000}
    assert {plan.train_steps(params, s) for s in sizes} == {245}  # ceil(1e6 / (16 × 256))
    small = {**params, "tokens_per_parameter": 0.1}
    assert plan.train_tokens(small, sizes[0]) == -(-sizes[0].parameter_count // 10)


def test_the_power_estimate_and_the_bootstrap_interval():
    # 400 test texts per classifier: a fall of about 7.7 points from 85% is found 80% of the time.
    # The textbook value (Fleiss, no continuity correction): 85% vs 75% at 80% power and the 5% level needs 250.
    assert texts_needed(0.85, 0.75) == 250
    assert 0.07 < detectable_difference(400, 0.85) < 0.08
    assert texts_needed(0.88, 0.74) < texts_needed(0.88, 0.84)  # bigger differences need fewer texts
    with pytest.raises(ValueError):
        texts_needed(0.8, 0.8)
    outcomes = [1] * 160 + [0] * 40
    low, high = bootstrap_interval(outcomes)
    assert low < 0.8 < high and 0.08 < high - low < 0.14  # ± 1.96 × sqrt(.16/200) ≈ ± 0.055
    assert bootstrap_interval(outcomes) == (low, high)  # seeded: a stored interval can be recomputed
    assert bootstrap_interval([1] * 10) == (1.0, 1.0)
    with pytest.raises(ValueError):
        bootstrap_interval([])


def test_steps_come_after_what_they_need_and_share_one_human_reference(mini_family):
    params = params_validate("study", {"name": "s", "eval_corpus": "plays.txt"})
    corpora = {"corpus": "s3://corpora/studies/s/corpus/x.txt", "eval_corpus": "s3://corpora/studies/s/e/y.txt"}
    sizes = plan.family_sizes("mini")
    steps = plan.study_steps(params, corpora, sizes)
    seen = set()
    for step in steps:
        assert set(step.needs) <= seen, step.key
        seen.add(step.key)
    assert len(steps) == 4 * 5
    done = {f"train:{s.slug}": {"revision": "a" * 40} for s in sizes}
    generations = [s.params(done) for s in steps if s.kind == "generate_output_dataset"]
    assert [g["reference"] for g in generations] == [True, False, False, False]
    assert generations[0]["reference_name"] == "s-human"
    assert {s.params(done)["reference"] for s in steps if s.kind == "detection_baseline"} == {"s-human"}
    assert all("generate:mini-1m" in s.needs for s in steps if s.kind == "detection_baseline")
    no_eval = plan.study_steps(params, {"corpus": corpora["corpus"]}, sizes)
    assert not [s for s in no_eval if s.kind == "evaluate"]


@pytest.mark.parametrize("params, field", [
    ({"name": "s", "family": "nope"}, "family"),
    ({"name": "s", "samples": {"train": 10, "valid": 5}}, "samples"),
    ({"name": "s", "max_length": 256}, "max_length"),
    ({"name": "s", "max_tokens": 10**12, "tokens_per_parameter": 10_000}, "max_tokens"),
    ({"name": "s", "corpus": "/etc/passwd"}, "corpus"),
    ({"name": "s", "lr": 2}, "lr"),
    ({"name": "not a slug"}, "name"),
    ({"name": "s", "steps": 3}, "steps"),
    ({"name": "s", "batch_size": 10_000}, "batch_size"),
])
def test_bad_study_settings_are_named(mini_family, params, field):
    with pytest.raises(JobParamsInvalid) as refused:
        params_validate("study", params)
    assert field in refused.value.extra["fields"]


def test_one_name_is_one_study(mini_family):
    settings = params_validate("study", {"name": "s"})
    run = Job.objects.create(kind="study", params=settings, status=Job.Status.RUNNING)
    Study.objects.create(name="s", params=settings, job=run)
    with pytest.raises(JobParamsInvalid, match="running already"):
        params_validate("study", {"name": "s"})
    Job.objects.filter(pk=run.pk).update(status=Job.Status.FAILED)
    assert params_validate("study", {"name": "s"}) == settings  # same settings: a rerun
    with pytest.raises(JobParamsInvalid, match="other settings"):
        params_validate("study", {"name": "s", "seed": 1})


@pytest.mark.parametrize("who, status", [("rita", 403), ("steve", 403), ("otto", 201), ("alice", 201)])
def test_operators_and_policy_staff_start_studies_others_cannot(api, mini_family, request, settings, who, status):
    api.force_authenticate(request.getfixturevalue(who))
    response = api.post(reverse("job-list"), {"kind": "study", "params": {"name": "s"}}, format="json")
    assert response.status_code == status, response.json()
    assert Job.objects.filter(kind="study").count() == (status == 201)
    if status == 201:  # a study job only submits other jobs: the light queue, not a training worker's
        assert services.queue_for(Job.objects.get(kind="study")) == settings.CELERY_TASK_DEFAULT_QUEUE


def _study_with_step(settings, step_status: str) -> tuple[Study, Job, Job]:
    params = params_validate("study", {"name": "s", "eval_corpus": ""})
    run = Job.objects.create(kind="study", params=params, status=Job.Status.RUNNING, attempts=1)
    study = Study.objects.create(name="s", params=params, job=run, sizes=["mini-1m", "mini-3m", "mini-7m", "mini-13m"],
                                 corpora={"corpus": "plays.txt", "corpus_sha256": "0" * 64})
    step_job = Job.objects.create(kind="train", params={"model_size": "mini-1m"}, status=step_status,
                                  error="out of memory" if step_status == Job.Status.FAILED else "",
                                  result={"revision": "a" * 40} if step_status == Job.Status.SUCCEEDED else {})
    StudyStep.objects.create(study=study, key="train:mini-1m", job=step_job, run=run)
    return study, run, step_job


def test_a_step_failed_in_this_run_fails_the_study_and_a_rerun_submits_it_again(mini_family, s3):
    study, run, failed = _study_with_step(None, Job.Status.FAILED)
    runner.study_advance(study.pk)
    run.refresh_from_db()
    assert run.status == Job.Status.FAILED and "train:mini-1m" in run.error and "out of memory" in run.error

    rerun = Job.objects.create(kind="study", params=study.params, status=Job.Status.RUNNING, attempts=1)
    Study.objects.filter(pk=study.pk).update(job=rerun)
    runner.study_advance(study.pk)
    step = StudyStep.objects.get(study=study, key="train:mini-1m")
    assert step.job != failed and step.job.status == Job.Status.QUEUED and step.run == rerun
    assert step.job.params["steps"] == 245 and step.job.params["corpus"] == "plays.txt"
    # Every other size's training starts too (nothing else needs anything yet); the rest waits.
    assert set(StudyStep.objects.filter(study=study).values_list("key", flat=True)) == {
        f"train:{size.slug}" for size in ModelSize.objects.filter(family__slug="mini")}
    rerun.refresh_from_db()
    assert rerun.status == Job.Status.RUNNING and (rerun.progress_done, rerun.progress_total) == (0, 16)


def test_cancelling_a_study_cancels_the_steps_it_is_running(mini_family):
    study, run, running = _study_with_step(None, Job.Status.RUNNING)
    services.job_cancel(job=run)
    runner.study_advance(study.pk)
    running.refresh_from_db()
    assert running.status == Job.Status.CANCELLED


def test_a_running_study_job_is_never_taken_for_a_dead_worker(mini_family, settings):
    settings.STAGEGATE_JOB_STALE_AFTER_S = 0
    study, run, _ = _study_with_step(None, Job.Status.RUNNING)
    jobs.job_heartbeat(run)
    assert run.pk not in jobs.jobs_stale()


def _outcomes(accuracy: float, pairs: int = 100) -> str:
    """Human texts first, all right; model texts right as often as the accuracy needs."""
    right = round(accuracy * 2 * pairs) - pairs
    return "1" * pairs + "1" * right + "0" * (pairs - right)


def _row(n: int, loss: float, pure: tuple, k40: tuple) -> figures.SizeRow:
    row = figures.SizeRow(size=ModelSize(slug=f"s{n}", display_name=str(n)), parameters=10**n, tokens=1, steps=1,
                          val_loss=loss)
    row.detection = {name: figures.Detection(*values, 100, "d", _outcomes(values[0]))
                     for name, values in (("pure", pure), ("k40", k40))}
    return row


def test_the_reading_says_what_the_numbers_show_and_nothing_more():
    falling = [_row(6, 5.0, (0.95, 0.92, 0.98), (0.99, 0.97, 1.0)), _row(7, 4.0, (0.80, 0.76, 0.84), (0.98, 0.96, 1.0))]
    text = " ".join(figures.reading_for(falling))
    assert "falls at every step up in size" in text and "GPT-2's first trend holds" in text
    assert "95.0% at the smallest size to 80.0%" in text and "excludes zero" in text
    assert "the bigger model is harder to detect" in text
    assert "easier to detect than pure samples at 2 of 2 sizes" in text

    flat = [_row(6, 4.0, (0.80, 0.75, 0.85), (0.9, 0.85, 0.95)), _row(7, 4.5, (0.82, 0.77, 0.87), (0.88, 0.8, 0.93))]
    text = " ".join(figures.reading_for(flat))
    assert "does not fall with size" in text and "does not show here" in text
    assert "rises from 80.0%" in text and "includes zero, so this test cannot tell the two sizes apart" in text
    assert "harder to detect" not in text

    weak = [_row(6, 5.31, (0.9, 0.85, 0.95), (0.96, 0.94, 0.98)), _row(7, 5.28, (0.9, 0.85, 0.95), (0.96, 0.94, 0.98)),
            _row(8, 5.30, (0.9, 0.85, 0.95), (0.96, 0.94, 0.98))]
    text = " ".join(figures.reading_for(weak))
    assert "but not at every step (5.310 → 5.280 → 5.300" in text and "shows only weakly here (0.010 nats" in text


def test_wikitext_is_detokenised_as_gpt2_evaluated_it():
    raw = ' = Robert <unk> = \n He had a guest @-@ starring role , in 2,000 @,@ 000 " Teddy \'s Story " ( 2004 ) . \n'
    assert wikitext_detokenize(raw) == ('= Robert <unk> =\n He had a guest-starring role, in 2,000,000 "Teddy\'s '
                                        'Story" (2004). \n')


def test_the_study_pages_without_a_study(client, db):
    assert "No study has been run yet" in client.get("/study/").content.decode()
    assert client.get("/study/nope/").status_code == 404
    assert client.get("/study/nope/plots/language.svg").status_code == 404


def test_a_study_whose_starter_lost_the_role_fails_saying_so(mini_family, s3, otto, role_groups):
    study, run, _ = _study_with_step(None, Job.Status.SUCCEEDED)
    Job.objects.filter(pk=run.pk).update(created_by=otto)  # steps start in the name of whoever started the run
    otto.groups.clear()
    runner.study_advance(study.pk)
    run.refresh_from_db()
    assert run.status == Job.Status.FAILED and "could not start" in run.error and "submit jobs" in run.error
    assert not Job.objects.filter(kind="train", created_by=otto).exists()


def test_a_second_study_job_for_a_running_study_fails_and_leaves_the_first_alone(mini_family):
    study, run, _ = _study_with_step(None, Job.Status.RUNNING)
    second = Job.objects.create(kind="study", params=study.params, status=Job.Status.RUNNING, attempts=1)
    from workers.errors import StudyMismatch

    with pytest.raises(StudyMismatch, match="running already"):
        runner.study_job_start(second)
    assert Study.objects.get(pk=study.pk).job == run


def test_shared_texts_are_resampled_together():
    # Both classifiers wrong on the same 30 of the 100 shared human texts: resampled together, those errors move
    # both accuracies alike and cancel in the difference; resampled apart, they widen its interval.
    shared = [0] * 30 + [1] * 70
    a, b = shared + [1] * 90 + [0] * 10, shared + [1] * 80 + [0] * 20
    paired_low, paired_high = difference_interval(a, b, paired=100)
    apart_low, apart_high = difference_interval(a, b, paired=0)
    assert paired_high - paired_low < 0.8 * (apart_high - apart_low)
    assert paired_low < -0.05 < paired_high


def test_the_difference_test_finds_what_overlapping_intervals_hide():
    # 90% vs 82% on 200 texts each, the 100 human texts shared: the two 95% intervals overlap, yet the
    # difference's interval, from the paired outcomes, excludes zero.
    a, b = _outcomes(0.90), _outcomes(0.82)
    first = figures.Detection(0.90, *bootstrap_interval([int(c) for c in a]), 100, "a", a)
    last = figures.Detection(0.82, *bootstrap_interval([int(c) for c in b]), 100, "b", b)
    assert last.high > first.low  # overlapping intervals
    low, high = figures._difference(first, last)
    assert low < -0.08 < high < 0


def test_a_finished_step_advances_its_study_once_committed(mini_family, monkeypatch, django_capture_on_commit_callbacks):
    study, run, step = _study_with_step(None, Job.Status.RUNNING)
    sent = []
    monkeypatch.setattr(runner.celery_app, "send_task", lambda name, args: sent.append((name, args)))
    with django_capture_on_commit_callbacks(execute=True):
        jobs.job_succeed(step, result={"revision": "a" * 40})
    assert sent == [(runner.ADVANCE_TASK, [study.pk])]
    with django_capture_on_commit_callbacks(execute=True):
        jobs.job_heartbeat(run)  # progress is not an ending: nothing to advance
    assert len(sent) == 1


def _varied_text() -> str:
    """Enough distinct words for a tokenizer of the mini family's 8,192 tokens."""
    import random

    rng = random.Random(0)
    return " ".join("".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(3, 9))) for _ in range(40_000))


def _trained_revision(tmp_path) -> str:
    """mini-1m with real files in S3 (a random model, a small tokenizer), as a finished training leaves it."""
    import torch

    from modelcore.export import export_hf
    from modelcore.model import GPT, GPTConfig
    from modelcore.tokenizer import train_tokenizer
    from registry import revisions
    from workers.bridge import MODEL_FILES

    size = ModelSize.objects.get(slug="mini-1m")
    torch.manual_seed(0)
    out = export_hf(GPT(GPTConfig.from_hparams(size.hparams.as_dict())),
                    train_tokenizer([_varied_text()], size.n_vocab),
                    tmp_path / "export")
    for name in MODEL_FILES:
        revisions.artifact_register(size=size, path=out / name)
    return size.revisions.order_by("-number").first().revision  # each file made a revision; the last has all


def test_a_rerun_skips_the_steps_that_succeeded(mini_family, s3, tmp_path):
    study, run, trained = _study_with_step(None, Job.Status.SUCCEEDED)
    Job.objects.filter(pk=trained.pk).update(result={"revision": _trained_revision(tmp_path)})
    Job.objects.filter(pk=run.pk).update(status=Job.Status.FAILED)
    rerun = Job.objects.create(kind="study", params=study.params, status=Job.Status.RUNNING, attempts=1)
    Study.objects.filter(pk=study.pk).update(job=rerun)
    runner.study_advance(study.pk)
    assert StudyStep.objects.get(study=study, key="train:mini-1m").job == trained  # not trained again
    # Its successors start now, the other sizes' training too.
    started = set(StudyStep.objects.filter(study=study, run=rerun).values_list("key", flat=True))
    assert started == {"generate:mini-1m", "train:mini-3m", "train:mini-7m", "train:mini-13m"}


def test_a_study_whose_sizes_are_gone_fails_naming_them_instead_of_finishing_with_less(mini_family, s3):
    study, run, running = _study_with_step(None, Job.Status.RUNNING)
    # A size deleted since the study started (a size with revisions cannot be deleted; one without can).
    Study.objects.filter(pk=study.pk).update(sizes=[*study.sizes[:2], "mini-7m-old", *study.sizes[2:]])
    runner.study_advance(study.pk)
    run.refresh_from_db()
    running.refresh_from_db()
    assert run.status == Job.Status.FAILED and "mini-7m-old no longer exist" in run.error
    assert running.status == Job.Status.CANCELLED
    # Every size gone: no study of nothing succeeds.
    rerun = Job.objects.create(kind="study", params=study.params, status=Job.Status.RUNNING, attempts=1)
    Study.objects.filter(pk=study.pk).update(job=rerun, sizes=["gone-1", "gone-2"])
    runner.study_advance(study.pk)
    rerun.refresh_from_db()
    assert rerun.status == Job.Status.FAILED and "gone-1, gone-2 no longer exist" in rerun.error


def test_an_unexpected_error_fails_the_study_instead_of_leaving_it_running(mini_family, monkeypatch):
    study, run, running = _study_with_step(None, Job.Status.RUNNING)

    def broken(*args, **kwargs):
        raise KeyError("corpus")

    monkeypatch.setattr(runner.plan, "study_steps", broken)
    with pytest.raises(KeyError):
        runner.study_advance(study.pk)
    run.refresh_from_db()
    running.refresh_from_db()
    assert run.status == Job.Status.FAILED and "KeyError" in run.error
    assert running.status == Job.Status.CANCELLED
    assert runner.studies_advance() == []  # nothing left running


def test_a_study_whose_datasets_names_would_not_fit_is_refused_before_it_starts(mini_family):
    from registry import services as registry_services

    family = registry_services.family_upsert(slug="long", name="Long")
    registry_services.model_size_upsert(family=family, slug="a-size-with-a-rather-long-slug-of-forty", display_name="1",
                                        hparams={"n_vocab": 320, "n_ctx": 64, "n_embd": 32, "n_head": 2, "n_layer": 1})
    with pytest.raises(JobParamsInvalid) as refused:
        params_validate("study", {"name": "a-study-name-that-is-long-too-and-then-longer", "family": "long"})
    assert "Too long" in refused.value.extra["fields"]["name"][0]


def test_a_new_study_may_not_take_existing_datasets_names(mini_family):
    from registry.models import OutputDataset

    OutputDataset.objects.create(name="s-human", kind=OutputDataset.Kind.REFERENCE, max_length=64)
    with pytest.raises(JobParamsInvalid, match="s-human"):
        params_validate("study", {"name": "s"})
