"""A study's figures, read back from what its steps stored (training runs, evaluation results, detection
results), and the reading the public page gives of them. Nothing here is computed that was not stored, except
the wording and the interval of a difference between two stored detection results (from their stored outcomes,
once per pair of results in a process)."""

import functools
from dataclasses import dataclass, field

from registry.datasets.selectors import GPT2_DETECTION as GPT2_DETECTION_TABLE
from registry.models import DetectionResult, EvalResult, ModelSize, OutputDataset, TrainingRun
from workers.models import Job, Study
from workers.statistics import detectable_difference, difference_interval
from workers.study import plan

# GPT-2's published figures, for the same axes, by parameters as counted today: the TF-IDF baseline's accuracy
# (the catalogue's table, registry/datasets/selectors.py) and WikiText-2 perplexity (paper, Table 3, zero-shot, per
# WikiText token).
GPT2_PARAMETERS = tuple(row.parameter_count for row in GPT2_DETECTION_TABLE)
GPT2_WIKITEXT2_PERPLEXITY = (29.41, 22.76, 19.93, 18.34)
GPT2_DETECTION = {"pure": tuple(row.pure for row in GPT2_DETECTION_TABLE),
                  "k40": tuple(row.top_k_40 for row in GPT2_DETECTION_TABLE)}
SAMPLINGS = ("pure", "k40")


@dataclass(frozen=True)
class Detection:
    accuracy: float
    low: float | None
    high: float | None
    test_pairs: int
    dataset: str
    outcomes: str  # each test text right (1) or wrong (0), human texts first

    @property
    def text(self) -> str:
        """As the page prints it: 84.5% (80.8–88.0)."""
        interval = f" ({self.low:.1%}–{self.high:.1%})" if self.low is not None and self.high is not None else ""
        return f"{self.accuracy:.1%}{interval}"


@dataclass
class SizeRow:
    size: ModelSize
    parameters: int
    tokens: int
    steps: int
    val_loss: float | None = None
    held_out_perplexity: float | None = None
    held_out_bits_per_byte: float | None = None
    wikitext_perplexity: float | None = None
    wikitext_bits_per_byte: float | None = None
    detection: dict[str, Detection] = field(default_factory=dict)
    training_run: int | None = None
    revision: str | None = None  # the revision its training made
    datasets: list[str] = field(default_factory=list)  # those its generation made


@dataclass
class StudyFigures:
    study: Study
    rows: list[SizeRow]
    steps_done: int
    steps_total: int
    reading: list[str]
    caveats: list[str]
    power: str

    @property
    def complete(self) -> bool:
        return self.steps_done == self.steps_total


def study_figures(study: Study, *, sizes_visible: set[int] | None = None,
                  datasets_visible: set[str] | None = None) -> StudyFigures:
    """The figures of the sizes and datasets a viewer may see (None: all of them, for staff and tests): a hidden
    size's row, step counts and share of the caveats are left out as if it did not exist, and a detection result
    or a human reference whose dataset is not released is not shown."""
    params = study.params
    sizes = [s for s in plan.study_sizes(study) if sizes_visible is None or s.pk in sizes_visible]
    seen = (lambda name: True) if datasets_visible is None else (lambda name: name in datasets_visible)
    slugs = {size.slug for size in sizes}
    results = {s.key: s.job.result for s in study.steps.select_related("job")
               if s.job.status == Job.Status.SUCCEEDED and s.key.split(":")[1] in slugs}
    stored = _stored(results)
    rows = []
    for size in sizes:
        row = SizeRow(size=size, parameters=size.parameter_count, tokens=plan.train_tokens(params, size),
                      steps=plan.train_steps(params, size))
        trained = results.get(f"train:{size.slug}")
        if trained and (run := stored.runs.get(trained["training_run"])):
            row.training_run, row.val_loss, row.revision = run.pk, run.final_val_loss, trained["revision"]
            held_out = stored.held_out.get(run.pk, {})
            row.held_out_perplexity = held_out.get("perplexity")
            row.held_out_bits_per_byte = held_out.get("bits_per_byte")
        row.datasets = [name for name in (results.get(f"generate:{size.slug}") or {}).get("datasets", [])
                        if seen(name)]
        evaluated = results.get(f"evaluate:{size.slug}")
        if evaluated:
            figures = {metric: stored.evals[pk].value for metric, pk in evaluated["eval_results"].items()
                       if pk in stored.evals}
            row.wikitext_perplexity = figures.get("perplexity")
            row.wikitext_bits_per_byte = figures.get("bits_per_byte")
        for sampling in SAMPLINGS:
            detected = results.get(f"baseline:{size.slug}:{sampling}")
            result = stored.detections.get(detected["detection_result"]) if detected else None
            if result is not None and seen(result.dataset.name):
                row.detection[sampling] = Detection(result.accuracy, result.accuracy_low, result.accuracy_high,
                                                    result.test_pairs, result.dataset.name, result.test_outcomes)
        rows.append(row)
    human = OutputDataset.objects.filter(name=plan.human_name(params)).first()
    steps = plan.study_steps(params, study.corpora or {"corpus": "", "eval_corpus": params["eval_corpus"]}, sizes)
    return StudyFigures(study=study, rows=rows, steps_done=len(results), steps_total=len(steps),
                        reading=reading_for(rows), caveats=_caveats(params, rows),
                        power=_power(params, rows, human if human and seen(human.name) else None))


@dataclass
class _Stored:
    runs: dict[int, TrainingRun]
    held_out: dict[int, dict[str, float]]  # training run → metric → value, its held-out corpus's
    evals: dict[int, EvalResult]
    detections: dict[int, DetectionResult]


def _stored(results: dict[str, dict]) -> _Stored:
    """The records the steps' results name, in one query per kind, whatever the number of sizes."""
    def named(kind: str) -> list[dict]:
        return [result for key, result in results.items() if key.startswith(f"{kind}:")]

    run_ids = [result["training_run"] for result in named("train")]
    held_out: dict[int, dict[str, float]] = {}
    for evaluation in EvalResult.objects.filter(training_run__in=run_ids).exclude(dataset=plan.WIKITEXT_NAME):
        held_out.setdefault(evaluation.training_run_id, {})[evaluation.metric] = evaluation.value
    return _Stored(
        runs=TrainingRun.objects.in_bulk(run_ids), held_out=held_out,
        evals=EvalResult.objects.in_bulk([pk for result in named("evaluate") for pk in result["eval_results"].values()]),
        detections=DetectionResult.objects.select_related("dataset").in_bulk(
            [result["detection_result"] for result in named("baseline")]))


def _fmt(value: float) -> str:
    return f"{value:.3g}" if value < 10 else f"{value:.1f}"


def _falls_at_every_step(values: list[float]) -> bool:
    return all(b < a for a, b in zip(values, values[1:], strict=False))


def _trend(values: list[float]) -> str:
    if _falls_at_every_step(values):
        return "falls at every step up in size"
    if values[-1] < values[0]:
        return "falls from the smallest size to the largest, but not at every step"
    return "does not fall with size"


def reading_for(rows: list[SizeRow]) -> list[str]:
    """What the numbers show, in sentences that follow the numbers: each claim is tested before it is made."""
    reading = []
    losses = [r.val_loss for r in rows if r.val_loss is not None]
    if len(losses) == len(rows) > 1:
        trend = _trend(losses)
        verdict = ("GPT-2's first trend holds here." if _falls_at_every_step(losses) else
                   f"GPT-2's first trend shows only weakly here ({losses[0] - losses[-1]:.3f} nats from the smallest "
                   "to the largest)." if losses[-1] < losses[0] else "GPT-2's first trend does not show here.")
        reading.append(f"Validation loss on held-out text {trend} "
                       f"({' → '.join(f'{v:.3f}' for v in losses)} nats per token): {verdict}")
    wikitext = [r.wikitext_perplexity for r in rows if r.wikitext_perplexity is not None]
    if len(wikitext) == len(rows) > 1:
        far = min(wikitext) > 10 * GPT2_WIKITEXT2_PERPLEXITY[0]
        reading.append(f"WikiText-2 perplexity {_trend(wikitext)} ({' → '.join(_fmt(v) for v in wikitext)})."
                       + (" That is far above GPT-2's (29.4 at 124M), whose models read 40 GB of web text: Wikipedia "
                          "is out of the domain of models trained on a small corpus of another kind." if far else "")
                       + " The bits per byte in the table compare sizes without depending on our tokenizer.")
    for sampling, label, gpt2 in (("pure", "pure samples", "88% to 74%"), ("k40", "top-k 40 samples", "97% to 93%")):
        measured = [r.detection[sampling] for r in rows if sampling in r.detection]
        if len(measured) != len(rows) or len(rows) < 2:
            continue
        first, last = measured[0], measured[-1]
        low, high = _difference(first, last)
        direction = "falls" if last.accuracy < first.accuracy else "rises"
        significant = low > 0 or high < 0
        reading.append(
            f"Detection accuracy on {label} {direction} from {first.accuracy:.1%} at the smallest size to "
            f"{last.accuracy:.1%} at the largest (GPT-2: {gpt2}, 124M → 1.5B). The 95% interval of the difference "
            f"({low * 100:+.1f} to {high * 100:+.1f} points, a bootstrap over the shared test texts) "
            + ("excludes zero, so the change is more than noise." if significant else
               "includes zero, so this test cannot tell the two sizes apart.")
            + (" As in GPT-2, the bigger model is harder to detect." if direction == "falls" and significant else
               " This does not show GPT-2's trend."))
    both = [(r.detection["pure"].accuracy, r.detection["k40"].accuracy) for r in rows
            if {"pure", "k40"} <= set(r.detection)]
    if both:
        easier = sum(k40 > pure for pure, k40 in both)
        reading.append(f"Top-k 40 samples were easier to detect than pure samples at {easier} of {len(both)} sizes "
                       "(GPT-2: at every size, since truncation leaves tell-tale word frequencies).")
    return reading


def _difference(a: Detection, b: Detection) -> tuple[float, float]:
    """95% interval of b's accuracy minus a's, from their stored outcomes; the human texts are shared when both
    were tested on the same number of pairs (the same reference's first texts, in order)."""
    return _difference_of(a.outcomes, b.outcomes, a.test_pairs if a.test_pairs == b.test_pairs else 0)


@functools.lru_cache(maxsize=256)
def _difference_of(outcomes_a: str, outcomes_b: str, paired: int) -> tuple[float, float]:
    # A bootstrap of 2,000 resamples in Python: once per pair of stored results, not per page view and plot.
    return difference_interval([int(c) for c in outcomes_a], [int(c) for c in outcomes_b], paired=paired)


def _caveats(params: dict, rows: list[SizeRow]) -> list[str]:
    caveats = []
    if len(rows) > 1:
        span = rows[-1].parameters / rows[0].parameters
        caveats.append(f"The sizes span {span:.1f}× in parameters ({rows[0].parameters:,} to "
                       f"{rows[-1].parameters:,}); GPT-2's span 12.5×, at a hundred times the scale.")
    capped = [r for r in rows if r.tokens == params["max_tokens"]]
    caveats.append(
        f"Compute rule: {params['tokens_per_parameter']:g} training tokens per parameter, at most "
        f"{params['max_tokens']:,}; " + (f"{len(capped)} of {len(rows)} sizes reached the cap, so they saw the same "
                                         "text for the same number of steps, and the larger ones are further from "
                                         "trained than the smaller." if capped else "no size reached the cap."))
    caveats.append(f"Samples are at most {params['max_length']} tokens (GPT-2's up to 1,024): shorter texts carry "
                   "less evidence, and the classifier learns from "
                   f"{params['samples']['train']} pairs where GPT-2's learned from 250,000.")
    return caveats


def _power(params: dict, rows: list[SizeRow], human: OutputDataset | None) -> str:
    pairs = [d.test_pairs for r in rows for d in r.detection.values()]
    texts = 2 * (min(pairs) if pairs else params["samples"]["test"])
    note = (f"Each accuracy is measured on {texts} test texts (half human, half model). A power estimate (two "
            "proportions, 80% power, 5% level) says that many detect a fall of "
            f"{detectable_difference(texts, 0.85):.1%} from 85% accuracy, and of "
            f"{detectable_difference(texts, 0.95):.1%} from 95%: differences of GPT-2's size (14 points on pure "
            "samples) separate, smaller ones may not.")
    if human is not None:
        splits = (human.stats or {}).get("splits", {})
        note += (f" The human reference, held-out text of the training corpus, holds "
                 f"{sum(splits.values()):,} texts ({', '.join(f'{n} {s}' for s, n in splits.items())}); the "
                 "held-out text is what caps the sample counts.")
    return note
