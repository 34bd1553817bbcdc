from __future__ import annotations

from django import forms

from chatbot_saas.errors import AppError

from . import services
from .catalog import EVENTS


class EndpointForm(forms.Form):
    url = forms.URLField(
        label="Endpoint URL",
        max_length=500,
        assume_scheme="https",
        help_text="A public http(s) address that accepts POST requests. Private and local addresses are refused.",
    )
    description = forms.CharField(label="Description", max_length=200, required=False)
    events = forms.MultipleChoiceField(
        label="Events",
        choices=[(name, f"{name}: {meaning}") for name, meaning in EVENTS.items()],
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Choose at least one event."},
    )

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        try:
            services.endpoint_url_check(url)
        except AppError as exc:
            raise forms.ValidationError(exc.message, code=exc.code) from exc
        return url
