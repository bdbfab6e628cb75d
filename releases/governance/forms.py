"""Admin forms for release governance; the services do the validation that matters."""

from django import forms

from config.errors import DomainError
from registry.models import ModelSize
from releases.governance.factors import FACTORS
from releases.models import StageReview
from releases.stage_names import Stage

_DATETIME_INPUT = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")
_DATE_INPUT = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")


class StageRequestForm(forms.Form):
    model_size = forms.ModelChoiceField(
        queryset=ModelSize.objects.select_related("family").order_by("family__name", "order"),
        help_text="The change starts from the size's current stage.",
    )
    to_stage = forms.ChoiceField(choices=Stage.choices)
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
                label=question, required=False, widget=forms.Textarea(attrs={"rows": 2}),
                help_text="Required for releases to partners or the public.",
            )

    def factors(self) -> dict[str, str]:
        return {key: self.cleaned_data[f"factor_{key}"] for key in FACTORS if self.cleaned_data.get(f"factor_{key}")}

    def factor_fields(self):
        return [self[f"factor_{key}"] for key in FACTORS]

    def main_fields(self):
        return [self[name] for name in ("model_size", "to_stage", "rationale", "public_rationale",
                                        "effective_at", "review_by")]


class RejectForm(forms.Form):
    comment = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}),
                              help_text="Required: the reason recorded with the rejection.")


class ReviewForm(forms.Form):
    outcome = forms.ChoiceField(choices=StageReview.Outcome.choices)
    notes = forms.CharField(widget=forms.Textarea(attrs={"rows": 5}))
    next_review_by = forms.DateField(required=False, widget=_DATE_INPUT, help_text="Empty: six months from today.")


class ReleaseStateForm(forms.Form):
    at = forms.DateField(label="On date", widget=_DATE_INPUT)


class PublishForm(forms.Form):
    despite_unreleased_size = forms.BooleanField(
        required=False, label="Publish although the size is not public",
        help_text="An explicit release decision (as GPT-2's samples of unreleased sizes were published).")
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False,
                             help_text="Required when the size is not public; recorded in the audit trail.")


class UnpublishForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), help_text="Recorded in the audit trail.")


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
