"""What a decision looks at: the files a request releases, and what changed since the revision now at the
stage it asks for (files, hyperparameters, evaluation results)."""

from dataclasses import dataclass, field

from registry.models import EvalResult, Revision


@dataclass
class Comparison:
    """The request's revision against `baseline` (the size's newest revision at the requested stage)."""

    baseline: Revision | None
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)  # same name, other bytes
    hparams_changed: dict[str, tuple] = field(default_factory=dict)
    evals: list[tuple[str, str, float | None, float | None]] = field(default_factory=list)  # dataset, metric, then, now


def _files(revision: Revision) -> dict[str, str]:
    return {artifact.filename: artifact.sha256 for artifact in revision.artifacts.all()}


def _evals(revision: Revision) -> dict[tuple[str, str], float]:
    return {(e.dataset, e.metric): e.value for e in EvalResult.objects.filter(revision=revision)}


def compare_with_stage(revision: Revision, stage: str) -> Comparison:
    """How `revision` differs from the size's newest other revision that holds `stage` (none: all is new)."""
    baseline = (revision.model_size.revisions.filter(stage=stage).exclude(pk=revision.pk).order_by("-number")
                .first())
    now, then = _files(revision), _files(baseline) if baseline else {}
    comparison = Comparison(
        baseline=baseline,
        added=sorted(set(now) - set(then)), removed=sorted(set(then) - set(now)),
        changed=sorted(name for name in set(now) & set(then) if now[name] != then[name]))
    if baseline is not None:
        comparison.hparams_changed = {key: (baseline.hparams.get(key), revision.hparams.get(key))
                                      for key in sorted(set(revision.hparams) | set(baseline.hparams))
                                      if baseline.hparams.get(key) != revision.hparams.get(key)}
    evals_now, evals_then = _evals(revision), _evals(baseline) if baseline else {}
    comparison.evals = [(dataset, metric, evals_then.get((dataset, metric)), evals_now.get((dataset, metric)))
                        for dataset, metric in sorted(set(evals_now) | set(evals_then))]
    return comparison


def missing_evidence(*, revision: Revision | None = None, dataset=None) -> list[str]:
    """What a decision would want to see and cannot, in words: shown on the request and approval pages so
    nobody releases a size with no files, no evaluation or no training run without being told."""
    gaps: list[str] = []
    if revision is not None:
        if not revision.artifacts.exists():
            gaps.append(f"Revision #{revision.number} has no files: releasing it gives nobody anything to download.")
        if not EvalResult.objects.filter(revision=revision).exists() and \
                not EvalResult.objects.filter(model_size=revision.model_size, revision=None).exists():
            gaps.append("No evaluation results are recorded for this revision or its size.")
        if revision.training_run_id is None and not revision.artifacts.filter(training_run__isnull=False).exists():
            gaps.append("No training run is recorded: how these weights were made is not on the record.")
    if dataset is not None:
        if not dataset.splits.exists():
            gaps.append(f"Dataset {dataset.name} has no splits stored.")
        if dataset.kind == "generated" and not dataset.detection_results.exists():
            gaps.append("No detection baseline has been run on this dataset.")
    return gaps
