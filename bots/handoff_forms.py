"""The bot editor's Handoff section: human handoff and lead capture settings (issue 18)."""

from __future__ import annotations

from typing import Any
from zoneinfo import available_timezones

from django import forms

from .models import HandoffSettings

WEEKDAYS = [
    (0, "Monday"),
    (1, "Tuesday"),
    (2, "Wednesday"),
    (3, "Thursday"),
    (4, "Friday"),
    (5, "Saturday"),
    (6, "Sunday"),
]
CUSTOM_FIELDS_MAX = 5
UNANSWERED_COUNT_MAX = 10


class HandoffForm(forms.ModelForm):
    hours_days = forms.TypedMultipleChoiceField(
        choices=WEEKDAYS, coerce=int, required=False, widget=forms.CheckboxSelectMultiple, label="Business days"
    )
    custom_fields = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Extra lead fields",
        help_text=f"One label per line, e.g. Company. At most {CUSTOM_FIELDS_MAX}; visitors may leave them empty.",
    )

    class Meta:
        model = HandoffSettings
        fields = [
            "enabled",
            "on_request",
            "on_unanswered",
            "unanswered_count",
            "on_thumbs_down",
            "hours_enabled",
            "timezone",
            "hours_days",
            "hours_start",
            "hours_end",
            "outside_hours_message",
            "pickup_timeout_minutes",
            "lead_when",
            "name_field",
            "email_field",
            "phone_field",
            "custom_fields",
            "consent_text",
        ]
        labels = {
            "enabled": "Let visitors reach a person",
            "on_request": "Show a “Talk to a person” button in the widget",
            "on_unanswered": "Call a person when the assistant could not answer several times in a row",
            "unanswered_count": "Unanswered questions in a row before calling a person",
            "on_thumbs_down": "Call a person when the visitor rates an answer thumbs-down",
            "hours_enabled": "Only during business hours",
            "timezone": "Time zone",
            "hours_start": "Opens at",
            "hours_end": "Closes at",
            "outside_hours_message": "Message outside business hours",
            "pickup_timeout_minutes": "Minutes before asking for contact details if nobody picks up",
            "lead_when": "Ask for contact details",
            "name_field": "Name",
            "email_field": "Email",
            "phone_field": "Phone",
            "consent_text": "Consent checkbox text",
        }
        help_texts = {
            "on_unanswered": "“Could not answer” is the assistant's “I don't know” reply, when your knowledge has "
            "nothing on the question. The visitor then waits for an agent, as if they had asked for one.",
            "on_thumbs_down": "The visitor then waits for an agent, as if they had asked for one.",
            "lead_when": "“When the visitor asks for a person” also covers a person called by the triggers above.",
            "timezone": "An IANA name such as Europe/Paris or America/New_York.",
            "consent_text": "Leave empty for no checkbox. When set, visitors must tick it to send the form.",
        }
        widgets = {
            "hours_start": forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
            "hours_end": forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.is_bound and self.instance.pk:
            self.initial["custom_fields"] = "\n".join(self.instance.custom_fields or [])
        self.fields["pickup_timeout_minutes"].widget.attrs.update(min=1, max=120)
        # Optional in the POST: a form saved before this trigger existed keeps working (default 2).
        self.fields["unanswered_count"].required = False
        self.fields["unanswered_count"].widget.attrs.update(min=1, max=UNANSWERED_COUNT_MAX)

    def clean_timezone(self) -> str:
        value = self.cleaned_data["timezone"].strip()
        if value not in available_timezones():
            raise forms.ValidationError("Unknown time zone. Use a name such as Europe/Paris or UTC.")
        return value

    def clean_pickup_timeout_minutes(self) -> int:
        value = self.cleaned_data["pickup_timeout_minutes"]
        if not 1 <= value <= 120:
            raise forms.ValidationError("Between 1 and 120 minutes.")
        return value

    def clean_unanswered_count(self) -> int:
        value = self.cleaned_data["unanswered_count"]
        if value is None:
            return self.instance.unanswered_count or 2
        if not 1 <= value <= UNANSWERED_COUNT_MAX:
            raise forms.ValidationError(f"Between 1 and {UNANSWERED_COUNT_MAX}.")
        return value

    def clean_custom_fields(self) -> list[str]:
        labels = [line.strip() for line in self.cleaned_data["custom_fields"].splitlines() if line.strip()]
        if len(labels) > CUSTOM_FIELDS_MAX:
            raise forms.ValidationError(f"At most {CUSTOM_FIELDS_MAX} extra fields.")
        if any(len(label) > 40 for label in labels):
            raise forms.ValidationError("Each label has at most 40 characters.")
        return labels

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("hours_enabled") and not data.get("hours_days"):
            self.add_error("hours_days", "Pick at least one business day, or switch business hours off.")
        if data.get("hours_enabled") and data.get("hours_start") == data.get("hours_end"):
            self.add_error("hours_end", "Closing time must differ from opening time.")
        return data
