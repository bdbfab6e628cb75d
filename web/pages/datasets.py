"""Public HTML pages of the output datasets: the catalogue, a dataset's page, its plots, removal requests."""

from django import forms
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from config.client_ip import client_ip
from config.errors import NotFound
from config.throttles import RemovalRequestThrottle
from registry.datasets import selectors
from registry.datasets.removal import removal_request_create
from registry.models import OutputDataset
from releases.access.rules import visible_datasets, visible_sizes
from web import plots

PLOT_KINDS = ("lengths", "ended")


def _visible_dataset(name: str, user) -> OutputDataset:
    try:
        return selectors.dataset_from(visible_datasets(user), name=name)  # unpublished: 404 to all but staff
    except NotFound as error:
        raise Http404(error.message) from error


def _compat_url(request: HttpRequest, filename: str) -> str:
    return request.build_absolute_uri(reverse("compat-dataset-file", args=[filename]))


def catalogue(request: HttpRequest) -> HttpResponse:
    datasets = list(selectors.datasets_for_display(visible_datasets(request.user)))
    return render(request, "public/datasets.html", {
        "generated": [d for d in datasets if d.kind == OutputDataset.Kind.GENERATED],
        "references": [d for d in datasets if d.kind == OutputDataset.Kind.REFERENCE],
        "detection": selectors.detection_by_size(datasets), "gpt2_detection": selectors.GPT2_DETECTION,
        "base_url": request.build_absolute_uri("/").rstrip("/"),
    })


def dataset_page(request: HttpRequest, name: str) -> HttpResponse:
    dataset = _visible_dataset(name, request.user)
    splits = [{"split": part, "url": _compat_url(request, part.filename)} for part in dataset.splits.all()]
    preview = next((p for p in dataset.splits.all() if p.split == "valid"), None) or next(
        iter(dataset.splits.all()), None)
    size_visible = dataset.model_size is not None and visible_sizes(request.user).filter(
        pk=dataset.model_size_id).exists()
    return render(request, "public/dataset.html", {
        "dataset": dataset, "splits": splits, "stats": dataset.stats or {},
        "detection": selectors.latest_detection(dataset), "size_visible": size_visible,
        "preview": preview, "rows": selectors.sample_rows(preview) if preview else [],
        "sampling_label": selectors.sampling_label(dataset.sampling),
    })


def dataset_plot(request: HttpRequest, name: str, kind: str) -> HttpResponse:
    if kind not in PLOT_KINDS:
        raise Http404(f"No plot {kind!r}.")
    dataset = _visible_dataset(name, request.user)
    stats = dataset.stats or {}
    if kind == "lengths":
        data = {"histogram": stats.get("length_histogram") or [], "max_length": stats.get("length_histogram_max")
                or dataset.max_length}
        return plots.svg_response(plots.cached_svg(f"lengths:{dataset.pk}", data, plots.length_histogram(**data)))
    # "ended": this dataset among the others the caller may see, so the number has something to compare with.
    rows = [(d.name, float((d.stats or {}).get("fraction_ended", 0.0)))
            for d in selectors.datasets_for_display(visible_datasets(request.user)) if (d.stats or {}).get("lines")]
    if dataset.name not in {n for n, _ in rows}:
        rows.append((dataset.name, float(stats.get("fraction_ended", 0.0))))
    return plots.svg_response(plots.cached_svg(f"ended:{dataset.pk}", rows,
                                               plots.fraction_ended(rows=rows, highlight=dataset.name)))


def detection_plot(request: HttpRequest) -> HttpResponse:
    rows = [(r.size_label, r.pure, r.top_k_40)
            for r in selectors.detection_by_size(selectors.datasets_for_display(visible_datasets(request.user)))]
    if not rows:
        raise Http404("No detection results yet.")
    return plots.svg_response(plots.cached_svg("detection", rows, plots.detection_accuracy(rows=rows)))


# --------------------------------------------------------------------------- data-removal requests
class RemovalRequestForm(forms.Form):
    name = forms.CharField(max_length=200, label="Your name")
    email = forms.EmailField(label="Your email", help_text="Staff reply to this address.")
    dataset = forms.ModelChoiceField(queryset=OutputDataset.objects.none(), required=False, to_field_name="name",
                                     empty_label="Not sure / several", label="Dataset")
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), max_length=20_000,
                           label="Text to remove", help_text="A quote, or the split and id of the line.")
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=5_000, label="Why")

    def __init__(self, *args, user=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["dataset"].queryset = selectors.datasets_for_display(visible_datasets(user))


def removal_request(request: HttpRequest) -> HttpResponse:
    form = RemovalRequestForm(request.POST or None, user=request.user,
                              initial={"dataset": request.GET.get("dataset")})
    if request.method == "POST":
        throttle = RemovalRequestThrottle()
        if not throttle.allow_request(request, None):
            wait_s = int(throttle.wait() or 60)
            response = render(request, "public/removal_request.html", {"form": form, "wait_s": wait_s}, status=429)
            response["Retry-After"] = str(wait_s)
            return response
        if form.is_valid():
            removal_request_create(**form.cleaned_data, ip=client_ip(request))
            return redirect("dataset-removal-sent")
    return render(request, "public/removal_request.html", {"form": form})


def removal_request_sent(request: HttpRequest) -> HttpResponse:
    return render(request, "public/removal_sent.html")
