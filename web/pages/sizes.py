"""Public HTML pages of model sizes: the home page, a size's page and a training run's page."""

import math

from django.db.models import Prefetch
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from config.errors import NotFound
from registry import selectors
from registry.models import Artifact, ModelCard, ModelSize, Revision, TrainingRun
from releases.access import links
from releases.access import rules as access
from releases.governance import selectors as release_selectors
from releases.models import StageChange
from web import plots


def _visible_size(slug: str, user) -> ModelSize:
    try:
        return selectors.size_from(access.visible_sizes(user), slug=slug)  # internal sizes: 404 to all but staff
    except NotFound as error:
        raise Http404(error.message) from error


def home(request: HttpRequest) -> HttpResponse:
    # The size's revisions' changes (datasets have their own pages), with the revision each moved.
    changes = StageChange.objects.filter(dataset=None).select_related("request", "revision").order_by("applied_at", "id")
    sizes = selectors.sizes_for_display(access.visible_sizes(request.user)).prefetch_related(
        Prefetch("stage_changes", queryset=changes, to_attr="history"))
    families: dict = {}
    for size in sizes:
        families.setdefault(size.family, {"sizes": [], "timeline": []})
        families[size.family]["sizes"].append(size)
        families[size.family]["timeline"].extend((change, size) for change in size.history)
    for family in families.values():
        family["timeline"].sort(key=lambda pair: (pair[0].applied_at, pair[0].id))
    return render(request, "public/home.html", {"families": families})


# --------------------------------------------------------------------------- a size
CARD_LABELS = {"details": "Model details", "intended_uses": "Intended uses",
               "out_of_scope_uses": "Out-of-scope uses", "limitations_and_biases": "Limitations and biases",
               "evaluation": "Evaluation"}


def _how_to_get_access(request: HttpRequest, decision: access.Decision, size: ModelSize) -> dict | None:
    """What someone refused can do next: sign in, or ask for this size in the partner portal."""
    if decision.reason == access.NOT_AUTHENTICATED:
        return {"url": f"{reverse('portal-login')}?next={request.path}", "label": "Sign in to the partner portal"}
    if decision.reason == access.NOT_A_PARTNER:
        return {"url": f"{reverse('portal-home')}#become-a-partner",
                "label": "Apply for your organisation to become a partner"}
    if decision.reason in (access.NO_GRANT, access.GRANT_EXPIRED, access.GRANT_REVOKED,
                           access.TERMS_NOT_ACCEPTED, access.PARTNER_INACTIVE):
        return {"url": f"{reverse('portal-access-request')}?size={size.slug}",
                "label": f"Request access to {size.slug} in the partner portal"}
    return None


def _download(size: ModelSize, artifact: Artifact, decision: access.Decision) -> dict:
    """A public file is a plain link (the API's 302 to a signed link). A partner's download goes through their
    session and counts against their grant's quota, so it is a POST (a form, CSRF-checked), never a GET that
    a prefetch or a crawler could fire."""
    by_session = decision.reason == access.GRANT
    name = "portal-file-download" if by_session else "model-file"
    url = f"{reverse(name, args=[size.slug, artifact.filename])}?revision={artifact.revision.revision}"
    return {"artifact": artifact, "url": url, "post": by_session}


def size_page(request: HttpRequest, slug: str) -> HttpResponse:
    size = _visible_size(slug, request.user)
    try:
        revision, decision = links.revision_for(request.user, size)  # the one a download would serve
    except NotFound as error:
        raise Http404(error.message) from error
    artifacts = list(revision.artifacts.select_related("revision").order_by("filename"))
    files = [_download(size, a, decision) for a in artifacts]
    card = ModelCard.objects.filter(model_size=size).first()
    sections = [(CARD_LABELS[key], getattr(card, key)) for key in ModelCard.SECTIONS if card and getattr(card, key)]
    return render(request, "public/size.html", {
        "size": size, "revision": revision, "decision": decision, "files": files if decision.allowed else [],
        "revisions": [shown for shown, _decision in links.revisions_for(request.user, size)],
        "file_count": len(files),
        "next_step": None if decision.allowed else _how_to_get_access(request, decision, size),
        "history": release_selectors.stage_history(size=size), "card_sections": sections,
        "evals": size.evals.all(), "runs": size.training_runs.all(),
        "datasets": access.visible_datasets(request.user).filter(model_size=size).order_by("name"),
        # Review notes are for those who decide: staff only.
        "reviews": release_selectors.stage_reviews(size=size) if access.sees_unreleased(request.user) else None,
    })


# --------------------------------------------------------------------------- a training run
def _visible_run(run_id: int, user) -> TrainingRun:
    run = TrainingRun.objects.select_related("model_size").filter(pk=run_id).first()
    if run is None:
        raise Http404(f"No training run {run_id}.")
    _visible_size(run.model_size.slug, user)  # runs of internal sizes: 404 to all but staff
    return run


def run_page(request: HttpRequest, run_id: int) -> HttpResponse:
    run = _visible_run(run_id, request.user)
    # The run's files as its newest revision holding them has them (later revisions may inherit them).
    revision = Revision.objects.filter(artifacts__training_run=run).order_by("-number").first()
    decision = access.may(request.user, run.model_size, access.DOWNLOAD, revision=revision)
    artifacts = list(revision.artifacts.filter(training_run=run).select_related("revision").order_by("filename")) \
        if revision else []
    return render(request, "public/run.html", {
        "run": run, "size": run.model_size, "settings": sorted(run.settings.items()),
        "decision": decision,
        "next_step": None if decision.allowed else _how_to_get_access(request, decision, run.model_size),
        "artifacts": [_download(run.model_size, a, decision) for a in artifacts],
        "evals": run.evals.all(), "points": len(run.loss_curve),
        "val_perplexity": math.exp(run.final_val_loss) if run.final_val_loss is not None else None,
        "eval_batches": run.settings.get("eval_batches", 20),
    })


def run_loss_plot(request: HttpRequest, run_id: int) -> HttpResponse:
    run = _visible_run(run_id, request.user)
    if not run.loss_curve:
        raise Http404("This run recorded no loss curve.")
    return plots.svg_response(plots.cached_svg("loss", {"run": run.pk, "curve": run.loss_curve},
                                               plots.loss_curve(curve=run.loss_curve)))
