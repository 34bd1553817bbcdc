"""Dashboard forms. They parse text fields into Python values; bots.services validates them."""

from __future__ import annotations

import json
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
    knowledge_bases = forms.ModelMultipleChoiceField(queryset=KnowledgeBase.objects.unscoped().none(), required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Through the tenant scope: other tenants' bases are not even offered.
        self.fields["knowledge_bases"].queryset = KnowledgeBase.objects.order_by("name")


class BotSettingsForm(forms.Form):
    name = forms.CharField(max_length=100)
    status = forms.ChoiceField(choices=Bot.Status.choices)
    welcome_message = forms.CharField(max_length=500)
    fallback_message = forms.CharField(max_length=500, help_text="Shown when no model can answer right now.")
    no_answer_message = forms.CharField(
        max_length=500,
        required=False,
        help_text="Said without calling a model when the knowledge has nothing relevant.",
    )
    fallback_contact = forms.CharField(
        max_length=200, required=False, help_text="Email, phone or page offered when the bot doesn't know."
    )
    answer_policy = forms.ChoiceField(choices=Bot.AnswerPolicy.choices)
    max_answer_tokens = forms.IntegerField(min_value=16, max_value=8000)
    temperature = forms.FloatField(min_value=0, max_value=2)
    retrieval_k = forms.IntegerField(min_value=1, max_value=20)
    min_passage_score = forms.FloatField(required=False)
    eval_margin = forms.FloatField(
        required=False,
        min_value=0,
        max_value=100,
        label="Evaluation margin",
        help_text="Points the evaluation score may drop before publishing needs your confirmation.",
    )
    model_chain = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 5}),
        help_text='JSON list, e.g. [{"provider": "openai", "model": "gpt-4o-mini", "params": {}}]',
    )
    knowledge_bases = forms.ModelMultipleChoiceField(queryset=KnowledgeBase.objects.unscoped().none(), required=False)
    allowed_origins = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), required=False, help_text="One per line."
    )
    allow_any_origin = forms.BooleanField(required=False)
    blocked_topics = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), required=False, help_text="One per line; re:<pattern> for a regex."
    )
    redact_output = forms.BooleanField(required=False)
    widget_title = forms.CharField(max_length=80, required=False)
    widget_primary_color = forms.RegexField(regex=r"^#[0-9a-fA-F]{6}$", required=False)
    widget_position = forms.ChoiceField(choices=[("right", "Right"), ("left", "Left")])
    widget_avatar_url = forms.URLField(required=False)
    widget_hide_powered_by = forms.BooleanField(
        required=False, label="Hide the “Powered by” line", help_text="White label: included in the Pro plan."
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["knowledge_bases"].queryset = KnowledgeBase.objects.order_by("name")

    @classmethod
    def initial_for(cls, bot: Bot) -> dict[str, Any]:
        widget = bot.widget or {}
        return {
            **{f: getattr(bot, f) for f in ("name", "status", "welcome_message", "fallback_message", "answer_policy")},
            **{f: getattr(bot, f) for f in ("no_answer_message", "fallback_contact")},
            **{f: getattr(bot, f) for f in ("max_answer_tokens", "temperature", "retrieval_k", "min_passage_score")},
            "eval_margin": bot.eval_margin,
            "model_chain": json.dumps(bot.model_chain, indent=1),
            "knowledge_bases": list(bot.knowledge_bases.values_list("pk", flat=True)),
            "allowed_origins": "\n".join(bot.allowed_origins),
            "allow_any_origin": bot.allow_any_origin,
            "blocked_topics": "\n".join(bot.blocked_topics),
            "redact_output": bot.redact_output,
            "widget_title": widget.get("title", ""),
            "widget_primary_color": widget.get("primary_color", ""),
            "widget_position": widget.get("position", "right"),
            "widget_avatar_url": widget.get("avatar_url", ""),
            "widget_hide_powered_by": bool(widget.get("hide_powered_by")),
        }

    def clean_model_chain(self) -> Any:
        try:
            return json.loads(self.cleaned_data["model_chain"])
        except ValueError as exc:
            raise forms.ValidationError(f"This is not valid JSON: {exc}.") from None

    def service_fields(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        widget = {
            key: data.pop(f"widget_{key}")
            for key in ("title", "primary_color", "position", "avatar_url", "hide_powered_by")
            if data.get(f"widget_{key}")
        }
        for key in ("title", "primary_color", "position", "avatar_url", "hide_powered_by"):
            data.pop(f"widget_{key}", None)
        data.pop("knowledge_bases")
        if data.get("eval_margin") is None:  # left empty: keep the bot's margin
            data.pop("eval_margin", None)
        data["widget"] = widget
        data["allowed_origins"] = _lines(data["allowed_origins"])
        data["blocked_topics"] = _lines(data["blocked_topics"])
        return data


class PromptVersionForm(forms.Form):
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 12}), label="System prompt")
    note = forms.CharField(max_length=200, required=False, help_text="What changed and why.")
    publish = forms.BooleanField(required=False, initial=False, label="Publish now")


class CredentialForm(forms.Form):
    provider = forms.ChoiceField(choices=ProviderCredential.Provider.choices)
    api_key = forms.CharField(max_length=400, widget=forms.PasswordInput(render_value=False))
    base_url = forms.URLField(required=False, help_text="Only for OpenAI-compatible servers.")


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
