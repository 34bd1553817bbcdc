"""Forms of the corrections pages: the correction itself and the FAQ import."""

from __future__ import annotations

from django import forms

from .models import CORRECTION_ANSWER_MAX, CORRECTION_QUESTION_MAX, CORRECTION_URL_MAX


class CorrectionForm(forms.Form):
    question = forms.CharField(
        max_length=CORRECTION_QUESTION_MAX,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="The visitor's question. Reworded versions of it get this answer too.",
    )
    answer = forms.CharField(
        max_length=CORRECTION_ANSWER_MAX,
        widget=forms.Textarea(attrs={"rows": 5}),
        help_text="What the bot should answer, cited to visitors as “from the support team”.",
    )
    source_url = forms.CharField(
        label="Source link (optional)",
        max_length=CORRECTION_URL_MAX,
        required=False,
        help_text="A public page with more detail, shown with the answer.",
    )


class CorrectionImportForm(forms.Form):
    file = forms.FileField(
        label="CSV file", help_text="One pair per line: question,answer, and optionally a source link."
    )
