"""The public pages of scaling studies (workers/study/): the latest study, one study, its two plots.

A study's figures follow the access rules of what they are about (releases/access/rules.py): a size's to whoever
may know it exists, a detection result's to whoever may see its dataset."""

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from releases.access.rules import sees_unreleased, visible_datasets, visible_sizes
from web import plots
from workers.models import Study
from workers.study import figures as study_figures

PLOT_KINDS = ("language", "detection")


def _figures(request: HttpRequest, study: Study) -> study_figures.StudyFigures:
    """The study's figures as this caller may see them: only sizes it may know exist, detection figures only of
    datasets it may see (internal ones stay internal until released, as their weights and samples do). Staff
    see everything, so for them nothing is looked up."""
    if sees_unreleased(request.user):
        return study_figures.study_figures(study)
    return study_figures.study_figures(
        study, sizes_visible=set(visible_sizes(request.user).values_list("pk", flat=True)),
        datasets_visible=set(visible_datasets(request.user).filter(name__startswith=f"{study.name}-")
                             .values_list("name", flat=True)))


def _study(name: str) -> Study:
    study = Study.objects.select_related("job").filter(name=name).first()
    if study is None:
        raise Http404(f"No study {name!r}.")
    return study


def study_index(request: HttpRequest) -> HttpResponse:
    """The latest finished study (else the latest), and the list of all of them."""
    studies = list(Study.objects.select_related("job"))
    latest = next((s for s in studies if s.finished_at), studies[0] if studies else None)
    return _render(request, latest, studies)


def study_page(request: HttpRequest, name: str) -> HttpResponse:
    return _render(request, _study(name), list(Study.objects.all()))


def _render(request: HttpRequest, study: Study | None, studies: list[Study]) -> HttpResponse:
    context = {"study": study, "studies": studies}
    if study is not None:
        context |= {"figures": _figures(request, study),
                    "gpt2_wikitext": zip(study_figures.GPT2_PARAMETERS, study_figures.GPT2_WIKITEXT2_PERPLEXITY,
                                         strict=True)}
    return render(request, "public/study.html", context)


def study_plot(request: HttpRequest, name: str, kind: str) -> HttpResponse:
    if kind not in PLOT_KINDS:
        raise Http404(f"No plot {kind!r}.")
    study = _study(name)
    figures = _figures(request, study)
    if kind == "language":
        data = {"ours": [(r.parameters, r.val_loss, r.wikitext_perplexity) for r in figures.rows],
                "gpt2": list(zip(study_figures.GPT2_PARAMETERS, study_figures.GPT2_WIKITEXT2_PERPLEXITY,
                                 strict=True))}
        return plots.svg_response(plots.cached_svg("study-language", data, plots.study_language(**data)))
    data = {"ours": {sampling: [(r.parameters, d.accuracy, d.low, d.high) for r in figures.rows
                                if (d := r.detection.get(sampling))] for sampling in study_figures.SAMPLINGS},
            "gpt2": {sampling: list(zip(study_figures.GPT2_PARAMETERS, values, strict=True))
                     for sampling, values in study_figures.GPT2_DETECTION.items()}}
    return plots.svg_response(plots.cached_svg("study-detection", data, plots.study_detection(**data)))
