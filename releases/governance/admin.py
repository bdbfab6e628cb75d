"""Admin for policy staff: requests (approved one at a time on their own page, with a comment and a
confirmation; rejected or cancelled there or in bulk), a request form, each size's stage timeline, reviews,
dataset publication and the governance dashboard. Stage is never an editable field."""

from datetime import UTC, datetime, time
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from config.client_ip import client_ip
from config.errors import DomainError
from registry.models import Revision
from releases.access import usage
from releases.access.models import PartnerOrganisation
from releases.admin_base import GovernanceAdmin, GovernanceInline
from releases.governance import reviews, selectors, stage_requests
from releases.governance.evidence import compare_with_stage, missing_evidence
from releases.governance.factors import FACTORS
from releases.governance.forms import (
    ApproveForm,
    RejectForm,
    ReleaseStateForm,
    ReviewForm,
    StageRequestForm,
    UsageFilterForm,
    add_domain_error,
)
from releases.governance.models import (
    DatasetPublication,
    SizeRelease,
    StageChange,
    StageChangeRequest,
    StageDecision,
    StageRequestComment,
    StageReview,
)
from releases.roles import DECIDE_STAGE_CHANGE, REVIEW_STAGE, can


# --------------------------------------------------------------------------- requests
class StageDecisionInline(GovernanceInline):
    model = StageDecision
    can_delete = False
    fields = ["decided_by", "verdict", "comment", "created_at"]
    readonly_fields = fields





class StageRequestCommentInline(GovernanceInline):
    model = StageRequestComment
    verbose_name, verbose_name_plural = "comment", "discussion"
    can_delete = False
    fields = ["created_at", "author", "text"]
    readonly_fields = fields


@admin.register(StageChangeRequest)
class StageChangeRequestAdmin(GovernanceAdmin):
    list_display = ["id", "subject_label", "transition", "status", "approvals", "requested_by", "effective_at",
                    "created_at"]
    list_filter = ["status", "to_stage", "model_size__family"]
    list_select_related = ["model_size__family", "revision", "dataset", "requested_by"]
    search_fields = ["model_size__slug", "dataset__name", "revision__revision", "rationale"]
    fields = ["subject_label", "missing", "what_it_releases", "compared", "from_stage", "to_stage", "status", "approvals",
              "requested_by", "decided_where", "rationale", "public_rationale", "factor_assessments", "effective_at",
              "review_due", "created_at", "decided_at", "applied_at"]
    readonly_fields = fields
    inlines = [StageDecisionInline, StageRequestCommentInline]
    # No bulk approval: an approval is given on the request's own page, where what it releases is shown.
    actions = ["reject_selected", "cancel_selected"]
    change_list_template = "admin/releases/stagechangerequest/change_list.html"
    change_form_template = "admin/releases/stagechangerequest/change_form.html"

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            approval_count=Count("decisions", filter=Q(decisions__verdict=StageDecision.Verdict.APPROVE))
        )


    @admin.display(description="subject")
    def subject_label(self, obj: StageChangeRequest) -> str:
        return obj.subject_label

    @admin.display(description="review by")
    def review_due(self, obj: StageChangeRequest) -> str:
        """The date asked for, or once applied the date the change was given (the default when none was asked)."""
        change = StageChange.objects.filter(request=obj).only("review_by").first()
        if change is not None:
            return f"{change.review_by:%Y-%m-%d}" + ("" if obj.review_by else " (the default interval)")
        return f"{obj.review_by:%Y-%m-%d}" if obj.review_by else "six months after it applies (the default)"

    @admin.display(description="decided")
    def decided_where(self, obj: StageChangeRequest) -> str:
        # In words: the admin's boolean icon ("Historical: ❌") said nothing to a reader.
        return "Recorded from history (decided before Stagegate; no approvals here)" if obj.historical \
            else "Here, by the approvals below"

    @admin.display(description="missing")
    def missing(self, obj: StageChangeRequest) -> str:
        gaps = missing_evidence(revision=obj.revision, dataset=obj.dataset) if obj.revision_id or obj.dataset_id \
            else []
        if not gaps:
            return "Nothing: files, evaluation and training run are on the record."
        return format_html('<ul class="errorlist">{}</ul>', format_html_join("", "<li>{}</li>", ((g,) for g in gaps)))

    @admin.display(description="what it releases")
    def what_it_releases(self, obj: StageChangeRequest) -> str:
        subject = obj.subject or {}
        if "files" in subject:
            rows = format_html_join("", "<tr><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
                                    ((name, f"{size:,}", sha) for name, size, sha in subject["files"]))
            return format_html("<p>Revision <code>{}</code> (#{})</p><table>{}</table>{}", subject["revision"],
                               subject.get("number", "?"), rows, "" if subject["files"] else "No files.")
        if "splits" in subject:
            rows = format_html_join("", "<tr><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
                                    ((split, f"{size:,}", sha) for split, size, sha in subject["splits"]))
            return format_html("<p>Dataset {} (from revision {})</p><table>{}</table>", subject["dataset"],
                               subject.get("revision") or "none", rows)
        return format_html("Every revision of {}: {}", subject.get("model", "?"),
                           ", ".join(r["revision"][:12] for r in subject.get("revisions", [])))

    @admin.display(description="compared with the revision now at that stage")
    def compared(self, obj: StageChangeRequest) -> str:
        if obj.revision_id is None:
            return "—"
        comparison = compare_with_stage(obj.revision, obj.to_stage)
        if comparison.baseline is None:
            return f"No other revision of {obj.model_size.slug} is {obj.to_stage}: every file is new there."
        parts = [format_html("Against <code>{}</code> (#{}):", comparison.baseline.revision,
                             comparison.baseline.number)]
        for label, names in (("added", comparison.added), ("removed", comparison.removed),
                             ("changed", comparison.changed)):
            if names:
                parts.append(format_html("<div>{}: {}</div>", label, ", ".join(names)))
        for key, (then, now) in comparison.hparams_changed.items():
            parts.append(format_html("<div>{}: {} → {}</div>", key, then, now))
        for dataset, metric, then, now in comparison.evals:
            parts.append(format_html("<div>{} {}: {} → {}</div>", dataset, metric,
                                     "—" if then is None else f"{then:.4g}", "—" if now is None else f"{now:.4g}"))
        if len(parts) == 1:
            parts.append(format_html("<div>{}</div>", "The same files and hyperparameters."))
        return format_html_join("", "{}", ((part,) for part in parts))

    @admin.display(description="change")
    def transition(self, obj: StageChangeRequest) -> str:
        return f"{obj.from_stage} → {obj.to_stage}"

    @admin.display(description="approvals", ordering="approval_count")
    def approvals(self, obj: StageChangeRequest) -> str:
        return f"{obj.approval_count} / {obj.approvals_required}"

    @admin.display(description="factors")
    def factor_assessments(self, obj: StageChangeRequest) -> str:
        if not obj.factors:
            return "—"
        return format_html("<dl>{}</dl>", format_html_join(
            "", "<dt>{}</dt><dd>{}</dd>", ((FACTORS.get(key, key), text) for key, text in obj.factors.items())
        ))

    # ----------------------------------------------------------------- actions
    def _each(self, request, queryset, verb: str, call) -> None:
        done = 0
        for obj in queryset.select_related("model_size"):
            try:
                call(obj)
                done += 1
            except DomainError as error:
                self.message_user(request, f"#{obj.pk} ({obj.model_size.slug}): {error.message}", messages.ERROR)
        if done:
            self.message_user(request, f"{verb} {done} request(s).", messages.SUCCESS)

    @admin.action(description="Reject selected requests (comment required)")
    def reject_selected(self, request, queryset):
        form = RejectForm(request.POST if "comment" in request.POST else None)
        if form.is_bound and form.is_valid():
            self._each(request, queryset, "Rejected", lambda obj: stage_requests.stage_request_reject(
                request=obj, approver=request.user, comment=form.cleaned_data["comment"], ip=client_ip(request)))
            return None
        return TemplateResponse(request, "admin/releases/stagechangerequest/reject.html", {
            **self.admin_site.each_context(request), "opts": self.model._meta, "title": "Reject requests",
            "form": form, "queryset": queryset.select_related("model_size"),
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        })

    @admin.action(description="Cancel selected requests (also stops an embargo)")
    def cancel_selected(self, request, queryset):
        self._each(request, queryset, "Cancelled", lambda obj: stage_requests.stage_request_cancel(
            request=obj, actor=request.user, ip=client_ip(request)))

    # ----------------------------------------------------------------- approving, on the request's own page
    def get_urls(self):
        approve = self.admin_site.admin_view(self.approve_view)
        comment = self.admin_site.admin_view(self.comment_view)
        return [path("<int:pk>/approve/", approve, name="releases_stagechangerequest_approve"),
                path("<int:pk>/comment/", comment, name="releases_stagechangerequest_comment"),
                *super().get_urls()]

    def comment_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """POST: add to the request's discussion; back to the request's page either way."""
        obj = get_object_or_404(StageChangeRequest, pk=pk)
        if request.method != "POST" or not can(request.user, DECIDE_STAGE_CHANGE):
            raise PermissionDenied
        try:
            stage_requests.stage_request_comment(request=obj, author=request.user, text=request.POST.get("text", ""),
                                                 ip=client_ip(request))
        except DomainError as error:
            self.message_user(request, error.message, messages.ERROR)
        else:
            self.message_user(request, "Comment added; policy staff have been told.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:releases_stagechangerequest_change", args=[obj.pk]) + "#discussion")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, object_id)
        may_approve = (obj is not None and obj.status == StageChangeRequest.Status.PENDING
                       and can(request.user, DECIDE_STAGE_CHANGE) and obj.requested_by_id != request.user.pk
                       and not obj.decisions.filter(decided_by=request.user).exists())
        return super().change_view(request, object_id, form_url,
                                   {**(extra_context or {}), "may_approve": may_approve})

    def approve_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """GET: what the request releases, and a comment to give; POST: the approval, with that comment. A
        refusal (the requester, a second approval by the same person) comes back to the request's page."""
        obj = get_object_or_404(StageChangeRequest, pk=pk)
        if not can(request.user, DECIDE_STAGE_CHANGE):
            raise PermissionDenied
        page = reverse("admin:releases_stagechangerequest_change", args=[obj.pk])
        form = ApproveForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                stage_requests.stage_request_approve(request=obj, approver=request.user,
                                                     comment=form.cleaned_data["comment"], ip=client_ip(request))
            except DomainError as error:
                self.message_user(request, f"#{obj.pk}: {error.message}", messages.ERROR)
            else:
                obj.refresh_from_db()
                self.message_user(request, f"You approved request #{obj.pk}; it is {obj.status}.", messages.SUCCESS)
            return HttpResponseRedirect(page)
        return TemplateResponse(request, "admin/releases/stagechangerequest/approve.html", {
            **self.admin_site.each_context(request), "opts": self.model._meta, "original": obj,
            "title": f"Approve request #{obj.pk}", "form": form, "what_it_releases": self.what_it_releases(obj),
            "missing": self.missing(obj),
            "compared": self.compared(obj), "page": page,
        })

    # ----------------------------------------------------------------- the request form
    def add_view(self, request: HttpRequest, form_url: str = "", extra_context=None) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        initial = {name: request.GET.get(name) for name in ("model_size", "revision", "dataset", "rationale")}
        form = StageRequestForm(request.POST or None, initial=initial)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            effective_at = data["effective_at"]
            if effective_at is not None and effective_at.tzinfo is None:
                effective_at = effective_at.replace(tzinfo=UTC)
            try:
                created = stage_requests.stage_request_create(
                    size=data["model_size"], revision=data["revision"], dataset=data["dataset"],
                    all_revisions=data["all_revisions"], requester=request.user, to_stage=data["to_stage"],
                    rationale=data["rationale"], public_rationale=data["public_rationale"],
                    factors=form.factors(), effective_at=effective_at, review_by=data["review_by"],
                    ip=client_ip(request),
                )
            except DomainError as error:
                add_domain_error(form, error)
            else:
                self.message_user(request, f"Request #{created.pk} filed; policy staff have been notified.",
                                  messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:releases_stagechangerequest_change", args=[created.pk]))
        return TemplateResponse(request, "admin/releases/stagechangerequest/request_form.html", {
            **self.admin_site.each_context(request), "opts": self.model._meta,
            "title": "Request a stage change", "form": form,
        })


# --------------------------------------------------------------------------- applied changes and reviews
@admin.register(StageChange)
class StageChangeAdmin(GovernanceAdmin):
    list_display = ["model_size", "from_stage", "to_stage", "applied_at", "applied_by", "review_by",
                    "last_reviewed_at"]
    list_filter = ["to_stage", "model_size__family"]
    list_select_related = ["model_size__family", "applied_by"]
    fields = ["model_size", "request", "from_stage", "to_stage", "applied_at", "applied_by", "review_by",
              "last_reviewed_at"]
    readonly_fields = fields


    def get_urls(self):
        return [
            path("<int:change_id>/review/", self.admin_site.admin_view(self.review_view),
                 name="releases_stagechange_review"),
            *super().get_urls(),
        ]

    def review_view(self, request: HttpRequest, change_id: int) -> HttpResponse:
        if not can(request.user, REVIEW_STAGE):
            raise PermissionDenied
        change = get_object_or_404(StageChange.objects.select_related("model_size"), pk=change_id)
        form = ReviewForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                reviews.stage_review_record(size=change.model_size, reviewer=request.user,
                                             ip=client_ip(request), **form.cleaned_data)
            except DomainError as error:
                add_domain_error(form, error)
            else:
                self.message_user(request, f"Review of {change.model_size.slug} recorded.", messages.SUCCESS)
                if form.cleaned_data["outcome"] == StageReview.Outcome.REVISIT:
                    # A revisit leads to a stage-change request: the form, filled in from the review.
                    self.message_user(request, "File the stage change the review calls for.", messages.INFO)
                    query = urlencode({"model_size": change.model_size_id, "from_review": "1",
                                       "rationale": f"Review of {timezone.localdate():%Y-%m-%d}: "
                                                    f"{form.cleaned_data['notes']}"})
                    return HttpResponseRedirect(f"{reverse('admin:releases_stagechangerequest_add')}?{query}")
                return HttpResponseRedirect(reverse("releases-dashboard"))
        return TemplateResponse(request, "admin/releases/stagechange/review.html", {
            **self.admin_site.each_context(request), "opts": self.model._meta,
            "title": f"Review {change.model_size} ({change.to_stage})", "form": form, "change": change,
        })


class StageHistoryInline(GovernanceInline):
    """The size's stage timeline on its admin page, oldest first."""

    model = StageChange
    verbose_name = "stage change"
    verbose_name_plural = "stage history"
    can_delete = False
    fields = ["applied_at", "from_stage", "to_stage", "applied_by_or_history", "review_by", "request_link"]
    readonly_fields = fields
    ordering = ["applied_at", "id"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("applied_by", "request")




    @admin.display(description="applied by")
    def applied_by_or_history(self, change: StageChange) -> str:
        if change.request.historical:
            return "recorded history"
        return change.applied_by.get_username() if change.applied_by else "embargo task"

    @admin.display(description="request")
    def request_link(self, change: StageChange) -> str:
        url = reverse("admin:releases_stagechangerequest_change", args=[change.request_id])
        return format_html('<a href="{}">#{}</a>', url, change.request_id)


class RevisionInline(GovernanceInline):
    """Every revision of the size with its own stage, newest first; each can be requested on its own."""

    model = Revision
    fk_name = "model_size"
    fields = ["number", "revision", "stage", "created_at", "training_run", "note", "request_link"]
    readonly_fields = fields
    ordering = ["-number"]

    def has_view_permission(self, request, obj=None) -> bool:
        return can(request.user, "registry.view_revision")

    @admin.display(description="request")
    def request_link(self, revision: Revision) -> str:
        url = reverse("admin:releases_stagechangerequest_add") + f"?model_size={revision.model_size_id}" \
            f"&revision={revision.pk}"
        return format_html('<a href="{}">Request a change of this revision</a>', url)


@admin.register(SizeRelease)
class SizeReleaseAdmin(GovernanceAdmin):
    """Each size as release governance sees it: its stage (the highest of its revisions'), its revisions, its
    timeline, and a way to request a change."""

    list_display = ["slug", "family", "stage"]
    list_filter = ["family", "stage"]
    list_select_related = ["family"]
    search_fields = ["slug", "display_name"]
    fields = ["family", "slug", "display_name", "stage", "stage_actions"]
    readonly_fields = fields
    inlines = [RevisionInline, StageHistoryInline]


    @admin.display(description="stage changes")
    def stage_actions(self, size: SizeRelease) -> str:
        url = reverse("admin:releases_stagechangerequest_add") + f"?model_size={size.pk}"
        return format_html('<a class="button" href="{}">Request a stage change</a>', url)


# --------------------------------------------------------------------------- dataset publication
@admin.register(DatasetPublication)
class DatasetPublicationAdmin(GovernanceAdmin):
    """Output datasets as release subjects: each one's stage, its history, and a way to request a change."""

    list_display = ["name", "kind", "model_size", "revision", "stage", "created_at"]
    list_filter = ["kind", "stage", "model_size__family"]
    list_select_related = ["model_size", "revision__model_size"]
    search_fields = ["name", "model_size__slug"]
    fields = ["name", "kind", "model_size", "revision", "sampling", "max_length", "stage", "created_at",
              "stage_actions"]
    readonly_fields = fields

    @admin.display(description="stage changes")
    def stage_actions(self, dataset: DatasetPublication) -> str:
        url = reverse("admin:releases_stagechangerequest_add") + f"?dataset={dataset.pk}"
        return format_html('<a class="button" href="{}">Request a stage change</a>', url)


# --------------------------------------------------------------------------- dashboard
def _dashboard(request: HttpRequest) -> HttpResponse:
    if not can(request.user, "releases.view_stagechangerequest"):
        raise PermissionDenied
    state_form = ReleaseStateForm(request.GET or None)
    release_state = None
    if state_form.is_bound and state_form.is_valid():
        at = datetime.combine(state_form.cleaned_data["at"], time.max, tzinfo=UTC)
        release_state = selectors.release_state_on(when=at)
    return TemplateResponse(request, "admin/releases/dashboard.html", {
        **admin.site.each_context(request), "title": "Release governance dashboard",
        "dashboard": selectors.governance_dashboard(), "state_form": state_form, "release_state": release_state,
    })


governance_dashboard_view = admin.site.admin_view(_dashboard)


def _usage(request: HttpRequest) -> HttpResponse:
    """Links issued per organisation, size, revision and day (releases/access/usage.py), filtered; ?format=csv."""
    if not can(request.user, "releases.view_issuedlink"):
        raise PermissionDenied
    form = UsageFilterForm(request.GET or None)
    chosen = form.cleaned_data if form.is_valid() else {}
    rows = usage.usage_rows(partner=chosen.get("partner"), size_slug=chosen.get("size") or None,
                            since=chosen.get("since"), until=chosen.get("until"))
    if request.GET.get("format") == "csv":
        response = HttpResponse(usage.usage_csv(rows), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="stagegate-usage.csv"'
        return response
    query = urlencode({key: value for key, value in request.GET.items() if key != "format" and value})
    return TemplateResponse(request, "admin/releases/usage.html", {
        **admin.site.each_context(request), "title": "Usage: links issued", "rows": rows,
        "total_links": sum(row.links for row in rows), "total_bytes": sum(row.bytes for row in rows),
        "partners": PartnerOrganisation.objects.order_by("name"), "query": query,
        "errors": "" if form.is_valid() or not form.is_bound else form.errors.as_text(),
        "chosen": {"partner": chosen["partner"].pk if chosen.get("partner") else None, "size": chosen.get("size", ""),
                   "since": chosen.get("since"), "until": chosen.get("until")},
    })


usage_view = admin.site.admin_view(_usage)
