"""Admin forms for release governance; the services do the validation that matters."""

from django import forms

from config.errors import DomainError
from registry.models import ModelSize, OutputDataset, Revision
from releases.governance.factors import FACTORS
from releases.models import PartnerOrganisation, StageReview
from releases.stage_names import Stage

_DATETIME_INPUT = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")
_DATE_INPUT = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")


class _WithStage(forms.ModelChoiceField):
    """Each choice names its current stage: a request starts from it."""

    def label_from_instance(self, obj) -> str:
        number = f" #{obj.number}" if isinstance(obj, Revision) else ""
        return f"{obj}{number} — now {obj.get_stage_display()}"


class StageRequestForm(forms.Form):
    """A request for a revision of a size (default: its newest), for a whole size (to withdraw every revision)
    or for an output dataset: the change starts from the subject's current stage."""

    required_css_class = "required"  # the admin's stylesheet marks these labels

    model_size = _WithStage(
        queryset=ModelSize.objects.select_related("family").order_by("family__name", "order"), required=False,
        help_text="The size whose revision moves (empty for a dataset).",
    )
    revision = _WithStage(
        queryset=Revision.objects.select_related("model_size").order_by("model_size__slug", "-number"),
        required=False, help_text="Empty: the size's newest revision.",
    )
    all_revisions = forms.BooleanField(required=False, label="Every revision of the size (withdrawal only)")
    dataset = _WithStage(queryset=OutputDataset.objects.order_by("name"), required=False,
                                     help_text="An output dataset to move instead of a revision.")
    # No default: the current stage first in the list made "no change" the easiest request to file.
    to_stage = forms.ChoiceField(choices=[("", "— choose the stage to move to —"), *Stage.choices],
                                 help_text="Internal → partners → public; any stage → withdrawn.")
    rationale = forms.CharField(widget=forms.Textarea(attrs={"rows": 6}),
                                help_text="The full reasoning; seen by policy staff and reviewers only.")
    public_rationale = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False,
                                       help_text="Shown on the public history; leave empty to publish none.")
    effective_at = forms.DateTimeField(required=False, widget=_DATETIME_INPUT, input_formats=["%Y-%m-%dT%H:%M"],
                                       help_text="Embargo (UTC): apply no earlier than this. Empty: on approval.")
    review_by = forms.DateField(required=False, widget=_DATE_INPUT, help_text="Empty: six months after applying.")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for key, question in FACTORS.items():
            self.fields[f"factor_{key}"] = forms.CharField(
                label=f"{question} (required for partners or public)", required=False,
                widget=forms.Textarea(attrs={"rows": 2}), help_text="Required for releases to partners or the public.",
            )

    def factors(self) -> dict[str, str]:
        return {key: self.cleaned_data[f"factor_{key}"] for key in FACTORS if self.cleaned_data.get(f"factor_{key}")}

    def factor_fields(self):
        return [self[f"factor_{key}"] for key in FACTORS]

    def main_fields(self):
        return [self[name] for name in ("model_size", "revision", "all_revisions", "dataset", "to_stage",
                                        "rationale", "public_rationale", "effective_at", "review_by")]

    def clean(self):
        data = super().clean()
        if not data.get("dataset") and not data.get("model_size") and not data.get("revision"):
            raise forms.ValidationError("Choose a size (or one of its revisions) or a dataset.")
        return data


class ApproveForm(forms.Form):
    comment = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}),
                              help_text="Required: what you checked and why you approve; recorded with the approval.")
    confirm = forms.BooleanField(label="I have read what this request releases and approve it.")


class RejectForm(forms.Form):
    comment = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}),
                              help_text="Required: the reason recorded with the rejection.")


class ReviewForm(forms.Form):
    outcome = forms.ChoiceField(choices=StageReview.Outcome.choices)
    notes = forms.CharField(widget=forms.Textarea(attrs={"rows": 5}))
    next_review_by = forms.DateField(required=False, widget=_DATE_INPUT, help_text="Empty: six months from today.")


class ReleaseStateForm(forms.Form):
    at = forms.DateField(label="On date", widget=_DATE_INPUT)


def add_domain_error(form: forms.Form, error: DomainError, *, prefix: str = "") -> None:
    """Show a service's refusal on the form: on the fields it names, else above the form."""
    placed = False
    for name, messages in (error.extra.get("fields") or {}).items():
        if isinstance(messages, dict):  # factors: {factor: [messages]}
            for factor, factor_messages in messages.items():
                field = f"factor_{factor}"
                if field in form.fields:
                    form.add_error(field, factor_messages)
                    placed = True
        elif f"{prefix}{name}" in form.fields:
            form.add_error(f"{prefix}{name}", messages)
            placed = True
    if not placed:
        form.add_error(None, error.message)


class UsageFilterForm(forms.Form):
    partner = forms.ModelChoiceField(queryset=PartnerOrganisation.objects.all(), required=False)
    size = forms.SlugField(required=False)
    since = forms.DateField(required=False)
    until = forms.DateField(required=False)
