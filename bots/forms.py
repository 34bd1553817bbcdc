"""Dashboard forms. They parse text fields into Python values; bots.services validates them."""

from __future__ import annotations

from typing import Any

from django import forms

from knowledge.models import Document, KnowledgeBase

from .models import Bot, ProviderCredential


def _lines(text: str) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


class BotCreateForm(forms.Form):
    name = forms.CharField(max_length=100)
    system_prompt = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 6}),
        initial="You are the friendly assistant of our company. Answer briefly, from the documentation.",
    )
    knowledge_bases = forms.ModelMultipleChoiceField(
        queryset=KnowledgeBase.objects.unscoped().none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="The bases the bot answers from; you can change them later in its Knowledge tab.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Through the tenant scope: other tenants' bases are not even offered.
        self.fields["knowledge_bases"].queryset = KnowledgeBase.objects.order_by("name")


class PromptVersionForm(forms.Form):
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 12}), label="System prompt")
    note = forms.CharField(max_length=200, required=False, help_text="What changed and why.")
    publish = forms.BooleanField(required=False, initial=False, label="Publish now")


class CredentialForm(forms.Form):
    provider = forms.ChoiceField(choices=ProviderCredential.Provider.choices)
    api_key = forms.CharField(max_length=400, label="API key", widget=forms.PasswordInput(render_value=False))
    base_url = forms.URLField(required=False, label="Base URL", help_text="Only for OpenAI-compatible servers.")


def _keywords(text: str) -> list[str]:
    return [k.strip() for k in (text or "").replace("\n", ",").split(",") if k.strip()]


class EvalCaseForm(forms.Form):
    question = forms.CharField(max_length=1000, widget=forms.Textarea(attrs={"rows": 2}))
    expected_documents = forms.ModelMultipleChoiceField(
        queryset=Document.objects.unscoped().none(), required=False, help_text="The documents a good answer cites."
    )
    expected_keywords = forms.CharField(
        required=False, help_text="Comma-separated words a good answer contains.", label="Expected keywords"
    )
    should_refuse = forms.BooleanField(required=False, label="The bot should say it doesn't know")

    def __init__(self, *args: Any, bot: Bot, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Through the tenant scope, and only the bot's own knowledge.
        self.fields["expected_documents"].queryset = Document.objects.filter(knowledge_base__bots=bot).order_by("title")

    def service_fields(self) -> dict[str, Any]:
        return {
            "question": self.cleaned_data["question"],
            "document_ids": [d.pk for d in self.cleaned_data["expected_documents"]],
            "keywords": _keywords(self.cleaned_data["expected_keywords"]),
            "should_refuse": self.cleaned_data["should_refuse"],
        }


class EvalImportForm(forms.Form):
    file = forms.FileField(help_text="CSV (question, expected_documents, expected_keywords, should_refuse) or JSON.")
    format = forms.ChoiceField(choices=[("csv", "CSV"), ("json", "JSON")])
