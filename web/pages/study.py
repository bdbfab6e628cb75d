"""The public pages of scaling studies (workers/study/): the latest study, one study, its two plots.

A study's figures about a size are shown to whoever may know the size exists (releases/access/rules.py): an
internal size's figures stay internal until the size is released, as its weights and samples do."""

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from releases.access.rules import visible_datasets, visible_sizes
from web import plots
from workers.models import Study
from workers.study import figures as study_figures

PLOT_KINDS = ("language", "detection")


def _figures(request: HttpRequest, study: Study) -> tuple[study_figures.StudyFigures, int]:
    """The study's figures with only the sizes this caller may see, and how many were left out."""
    figures = study_figures.study_figures(study)
    visible = set(visible_sizes(request.user).values_list("pk", flat=True))
    shown = [row for row in figures.rows if row.size.pk in visible]
    hidden = len(figures.rows) - len(shown)
    if hidden:
        figures.rows = shown
        figures.reading = study_figures.reading_for(shown)
    return figures, hidden


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
        figures, hidden = _figures(request, study)
        named = [name for r in figures.rows for name in r.datasets] + [d.dataset for r in figures.rows
                                                                         for d in r.detection.values()]
        datasets = set(visible_datasets(request.user).filter(name__in=named).values_list("name", flat=True))
        context |= {"figures": figures, "hidden": hidden, "visible_datasets": datasets,
                    "gpt2_wikitext": zip(study_figures.GPT2_PARAMETERS, study_figures.GPT2_WIKITEXT2_PERPLEXITY,
                                         strict=True)}
    return render(request, "public/study.html", context)


def study_plot(request: HttpRequest, name: str, kind: str) -> HttpResponse:
    if kind not in PLOT_KINDS:
        raise Http404(f"No plot {kind!r}.")
    study = _study(name)
    figures, _hidden = _figures(request, study)
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
