"""The partner portal (session login): my organisation, grants with status and quota use, terms to accept,
API tokens, access requests and the files each grant opens. What a member may download is asked of `may`."""

from dataclasses import dataclass, field

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST
from knox.models import AuthToken

from config.client_ip import client_ip
from config.errors import DomainError
from registry.filenames import is_slug
from registry.models import Artifact, ModelSize, Revision
from releases.access import applications, grants, links, organisation, partners, questions, renewals, tokens
from releases.access import rules as access
from releases.models import AccessGrant, AccessRequest, PartnerMember, PartnerOrganisation, TermsVersion
from releases.roles import governs
from releases.stage_names import Stage

TOKEN_DAYS_CHOICES = (7, 30, 90)


@dataclass
class FileRow:
    artifact: Artifact
    quota: access.QuotaUse | None


@dataclass
class GrantRow:
    grant: AccessGrant
    state: str  # access.GRANT_ACTIVE or the refusal reason of the grant itself
    decision: access.Decision  # may(user, size, MANIFEST): what the member can do with it now
    revision: Revision | None = None  # the revision a download would serve
    files: list[FileRow] = field(default_factory=list)
    renewable: bool = False  # within its last 30 days, or ended, and not revoked


@dataclass
class Overview:
    membership: PartnerMember | None
    terms: TermsVersion | None
    terms_accepted: bool
    grants: list[GrantRow]
    requests: list[AccessRequest]
    tokens: list[AuthToken]
    requestable: list[ModelSize]


def portal_overview(*, user) -> Overview:
    now = timezone.now()
    membership = access.membership_of(user)
    terms = access.terms_in_force(now=now)
    accepted = terms is not None and terms.acceptances.filter(user=user).exists()
    rows: list[GrantRow] = []
    requests: list[AccessRequest] = []
    requestable: list[ModelSize] = []
    if membership is not None:
        partner_grants = AccessGrant.objects.filter(partner=membership.partner).select_related("model_size__family")
        for grant in partner_grants.order_by("-created_at"):
            try:
                revision, decision = links.revision_for(user, grant.model_size)  # what a download would serve
            except DomainError as hidden:
                revision, decision = None, access.Decision(False, access.STAGE_INTERNAL, hidden.message)
            row = GrantRow(grant=grant, state=access.grant_state(grant, now=now), decision=decision,
                           revision=revision, renewable=renewals.renewable(grant, now=now))
            # Files are listed only where `may` allows, and for the grant that allows it.
            if decision.allowed and decision.grant is not None and decision.grant.pk == grant.pk:
                row.files = [FileRow(artifact, access.quota_use(grant, artifact.filename, now=now))
                             for artifact in revision.artifacts.order_by("filename")]
            rows.append(row)
        requests = list(AccessRequest.objects.filter(partner=membership.partner).select_related("model_size"))
        # Sizes whose grant the organisation holds are not offered: such a request is refused.
        held = AccessGrant.objects.active(at=now).filter(partner=membership.partner).values("model_size")
        requestable = list(ModelSize.objects.filter(stage=Stage.PARTNERS).exclude(pk__in=held)
                           .select_related("family"))
    return Overview(membership=membership, terms=terms, terms_accepted=accepted, grants=rows, requests=requests,
                    tokens=list(tokens.tokens_of(user)), requestable=requestable)


class PortalLoginView(auth_views.LoginView):
    template_name = "portal/login.html"
    redirect_authenticated_user = True


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "portal/home.html", {"o": portal_overview(user=request.user),
                                                "token_days": TOKEN_DAYS_CHOICES, "now": timezone.now(),
                                                # "Request access" on a size's page names the size to ask for.
                                                "preselect": request.GET.get("request", ""),
                                                "applications": applications.applications_of(request.user),
                                                "partner_kinds": PartnerOrganisation.Kind.choices,
                                                "may_govern": governs(request.user),
                                                "partner_admin": organisation.is_partner_admin(request.user)})


def _id(raw: str | None) -> int | None:
    """A form's id field as a number, or None: `abc` or a NUL byte never reaches a query (a 500 on PostgreSQL)."""
    return int(raw) if raw and raw.isascii() and raw.isdigit() and len(raw) <= 18 else None


def done(request: HttpRequest, call, success: str, *, then: str = "portal-home") -> HttpResponse:
    """Run a service call for a portal form: its refusal or `success` as a message, then back to `then`."""
    try:
        call()
    except DomainError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, success)
    return redirect(then)


@login_required
@require_POST
def terms_accept(request: HttpRequest) -> HttpResponse:
    terms = get_object_or_404(TermsVersion, pk=_id(request.POST.get("terms")))
    return done(request, lambda: partners.terms_accept(user=request.user, terms=terms, ip=client_ip(request)),
                f"You accepted the terms of use {terms.version}.")


NEW_TOKEN_SESSION_KEY = "portal_new_token"


@login_required
def token_create(request: HttpRequest) -> HttpResponse:
    """POST creates a token, then redirects to the page that shows its key once, so reloading that page
    creates nothing. A GET (a bookmark, a reload of an old form) goes to the token list."""
    if request.method != "POST":
        return redirect(f"{reverse('portal-home')}#tokens")
    try:
        days = int(request.POST.get("expires_days", 30))
        sizes = [slug for slug in request.POST.get("sizes", "").replace(",", " ").split() if slug]
        token, key = tokens.token_create(user=request.user, name=request.POST.get("name", ""),
                                           expires_days=days, actor=request.user,
                                           scope=request.POST.get("scope", "download"), sizes=sizes,
                                           ip=client_ip(request))
    except (ValueError, DomainError) as error:
        messages.error(request, getattr(error, "message", "Choose a lifetime in days."))
        return redirect("portal-home")
    # Held in the server-side session only until the next page shows it, which removes it.
    request.session[NEW_TOKEN_SESSION_KEY] = {"token_key": token.token_key, "key": key}
    return redirect("portal-token-created")


@login_required
def token_created(request: HttpRequest) -> HttpResponse:
    """The new token's key, shown once: it is stored hashed and cannot be shown again."""
    new = request.session.pop(NEW_TOKEN_SESSION_KEY, None)
    token = AuthToken.objects.filter(user=request.user, token_key=new["token_key"]).first() if new else None
    if token is None:
        messages.info(request, "A token's key is shown once, when it is created. Create a new token if you "
                               "did not copy it, and revoke the old one.")
        return redirect(f"{reverse('portal-home')}#tokens")
    response = render(request, "portal/token_created.html", {"token": token, "key": new["key"]})
    response["Cache-Control"] = "no-store"
    return response


@login_required
def token_revoke(request: HttpRequest, token_key: str) -> HttpResponse:
    """GET asks for confirmation; POST revokes."""
    token = get_object_or_404(AuthToken, user=request.user, token_key=token_key)
    if request.method != "POST":
        return render(request, "portal/token_revoke.html", {"token": token})
    return done(request, lambda: tokens.token_revoke(token=token, actor=request.user, ip=client_ip(request)),
                "Token revoked: it no longer works.")


@login_required
@require_POST
def access_request_withdraw(request: HttpRequest, request_id: int) -> HttpResponse:
    asked = get_object_or_404(AccessRequest, pk=request_id, partner__members__user=request.user,
                              partner__members__left_at__isnull=True)
    return done(request, lambda: grants.access_request_withdraw(request=asked, user=request.user,
                                                                ip=client_ip(request)),
                f"Access request #{asked.pk} withdrawn.")


@login_required
@require_POST
def grant_renewal_request(request: HttpRequest, grant_id: int) -> HttpResponse:
    grant = get_object_or_404(AccessGrant, pk=grant_id, partner__members__user=request.user,
                              partner__members__left_at__isnull=True)
    return done(request, lambda: renewals.grant_renewal_request(
        user=request.user, grant=grant, purpose=request.POST.get("purpose", ""), ip=client_ip(request)),
        f"Renewal of grant #{grant.pk} requested; policy staff will decide.")


@login_required
@require_POST
def partner_application_create(request: HttpRequest) -> HttpResponse:
    """Someone in no organisation applies for theirs to become a partner."""
    return done(request, lambda: applications.partner_application_create(
        user=request.user, organisation=request.POST.get("organisation", ""), kind=request.POST.get("kind", ""),
        contact_name=request.POST.get("contact_name", ""), contact_email=request.POST.get("contact_email", ""),
        intended_use=request.POST.get("intended_use", ""), agrees_to_terms=request.POST.get("agrees_to_terms") == "on",
        ip=client_ip(request)), "Application sent; policy staff will decide and you will see their answer here.")


ANSWER_FIELD = "answer-"  # + the question's id


@login_required
def access_request_create(request: HttpRequest) -> HttpResponse:
    """GET shows the request form for one size (`?size=slug`): purpose and the size's access questions. POST
    sends it; a refused one shows the form again with what was typed."""
    sizes = ModelSize.objects.filter(stage=Stage.PARTNERS).select_related("family")
    if request.method == "POST":
        size = sizes.filter(pk=_id(request.POST.get("model_size"))).first()
    else:
        slug = request.GET.get("size", "")
        size = sizes.filter(slug=slug).first() if is_slug(slug) else None
    if size is None:
        messages.error(request, "Choose a size at the partners stage.")
        return redirect(f"{reverse('portal-home')}#access-requests")
    answers = {key[len(ANSWER_FIELD):]: value for key, value in request.POST.items()
               if key.startswith(ANSWER_FIELD) and key[len(ANSWER_FIELD):].isdigit()}
    values = {**answers, "purpose": request.POST.get("purpose", "")}
    if request.method == "POST":
        try:
            grants.access_request_create(user=request.user, size=size, purpose=values["purpose"], answers=answers,
                                         ip=client_ip(request))
        except DomainError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, f"Access to {size.slug} requested; policy staff will decide.")
            return redirect(f"{reverse('portal-home')}#access-requests")
    return render(request, "portal/access_request.html", {
        "size": size, "values": values, "answer_field": ANSWER_FIELD,
        "questions": [(question, values.get(str(question.pk), "")) for question in questions.questions_for(size)]})


@login_required
@require_POST
def file_download(request: HttpRequest, slug: str, filename: str) -> HttpResponse:
    """A fresh signed link for the signed-in member, as a redirect; the browser downloads straight from storage."""
    try:
        revision = request.GET.get("revision") or None
        link = links.link_issue(user=request.user, size=links.size_by_slug(slug=slug), filename=filename,
                                revision=revision, ip=client_ip(request))
    except DomainError as error:
        messages.error(request, f"{slug}/{filename}: {error.message} [{error.code}]")
        return redirect("portal-home")
    response = HttpResponseRedirect(link.url)
    response["Cache-Control"] = "no-store"
    return response
