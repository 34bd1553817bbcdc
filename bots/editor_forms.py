"""Forms of the bot editor's sections (basics, knowledge, model chain, answer policy).

They turn fields into the values bots.services takes; the services validate again (bots.validation),
so the editor, the API and the admin refuse the same bad input. The model chain editor adds the
checks only the dashboard makes: a model from the catalog for OpenAI and Anthropic.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.forms import BaseFormSet, formset_factory

from knowledge.models import KnowledgeBase

from . import validation
from .catalog import MODELS, PROVIDERS, ModelInfo
from .models import Bot

PROVIDER_LABELS = {
    "openai": "OpenAI",
    "anthropic": "Anthropic",
    "openai_compatible": "OpenAI-compatible server",
    "offline": "Offline answerer (no model)",
}


def _lines(text: str) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def _window(tokens: int) -> str:
    return f"{tokens // 1_000_000}M" if tokens >= 1_000_000 else f"{tokens // 1000}k"


def model_label(model: str, info: ModelInfo) -> str:
    """ "gpt-4o-mini · $0.15 in / $0.60 out per 1M tokens · 128k context"."""
    if not info.input_per_million and not info.output_per_million:
        return f"{model} · free · {_window(info.context_window)} context"
    return (
        f"{model} · ${info.input_per_million:.2f} in / ${info.output_per_million:.2f} out per 1M tokens"
        f" · {_window(info.context_window)} context"
    )


def model_choices() -> list[tuple[str, list[tuple[str, str]]]]:
    """The catalog's models grouped by provider (one <optgroup> each) for the model select."""
    groups: list[tuple[str, list[tuple[str, str]]]] = []
    for provider in PROVIDERS:
        options = [(model, model_label(model, info)) for (p, model), info in MODELS.items() if p == provider]
        if options:
            groups.append((PROVIDER_LABELS[provider], options))
    return groups


class BasicsForm(forms.Form):
    name = forms.CharField(max_length=100)
    status = forms.ChoiceField(
        choices=Bot.Status.choices,
        help_text="A paused bot is unavailable: its widget does not open and it answers nobody.",
    )
    welcome_message = forms.CharField(
        max_length=500, help_text="The first message visitors see when they open the widget."
    )
    suggested_questions = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}),
        required=False,
        help_text=f"One per line, at most {validation.MAX_SUGGESTED_QUESTIONS}: shown in the widget as one-click "
        "questions.",
    )

    @classmethod
    def initial_for(cls, bot: Bot) -> dict[str, Any]:
        return {
            "name": bot.name,
            "status": bot.status,
            "welcome_message": bot.welcome_message,
            "suggested_questions": "\n".join((bot.widget or {}).get("suggested_questions", [])),
        }

    def clean_suggested_questions(self) -> list[str]:
        try:
            return validation.check_suggested_questions(self.cleaned_data["suggested_questions"])
        except ValidationError as exc:
            raise forms.ValidationError(exc.message_dict["suggested_questions"]) from None

    def service_fields(self, bot: Bot) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        # The widget designer edits the other widget keys; keep them as they are.
        data["widget"] = {**(bot.widget or {}), "suggested_questions": data.pop("suggested_questions")}
        return data


class KnowledgeForm(forms.Form):
    knowledge_bases = forms.ModelMultipleChoiceField(
        queryset=KnowledgeBase.objects.unscoped().none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="The bot answers from the documents of the bases ticked here.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Through the tenant scope: other tenants' bases are not even offered.
        self.fields["knowledge_bases"].queryset = KnowledgeBase.objects.order_by("name")  # type: ignore[attr-defined]


class PolicyForm(forms.Form):
    answer_policy = forms.ChoiceField(
        choices=Bot.AnswerPolicy.choices,
        help_text="Only from the knowledge: the bot says it doesn't know rather than use the model's general "
        "knowledge.",
    )
    no_answer_message = forms.CharField(
        max_length=500,
        required=False,
        help_text="Said without calling a model when the knowledge has nothing relevant.",
    )
    fallback_contact = forms.CharField(
        max_length=200, required=False, help_text="Email, phone or page offered when the bot doesn't know."
    )
    fallback_message = forms.CharField(
        max_length=500, help_text="Shown when no model in the chain can answer right now (an outage)."
    )
    max_answer_tokens = forms.IntegerField(
        min_value=16, max_value=8000, help_text="The longest answer, in tokens (about ¾ of a word each)."
    )
    temperature = forms.FloatField(
        min_value=0,
        max_value=2,
        help_text="0 answers the same way each time; higher is more varied. A chain entry's own value wins.",
    )
    retrieval_k = forms.IntegerField(
        min_value=1, max_value=20, label="Passages retrieved", help_text="How many passages the answer may draw on."
    )
    min_passage_score = forms.FloatField(
        required=False,
        help_text="Passages scoring below this are not used. Empty: the knowledge service's default.",
    )
    blocked_topics = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        help_text="One per line: questions on these get a polite refusal. Write re:&lt;pattern&gt; for a regular "
        "expression.",
    )
    redact_output = forms.BooleanField(
        required=False,
        label="Redact answers",
        help_text="Mask emails, phone numbers, card numbers and API-key-like strings in answers.",
    )
    redact_input = forms.BooleanField(
        required=False,
        label="Redact visitors' messages",
        help_text="Replace emails, phone numbers and card numbers in what visitors type before the message is "
        "stored or sent to the model. Leads from the lead form are not affected.",
    )
    eval_margin = forms.FloatField(
        min_value=0,
        max_value=100,
        label="Evaluation margin",
        help_text="Points the evaluation score may drop before publishing needs your confirmation.",
    )

    @classmethod
    def initial_for(cls, bot: Bot) -> dict[str, Any]:
        initial = {name: getattr(bot, name) for name in cls.base_fields}
        initial["blocked_topics"] = "\n".join(bot.blocked_topics)
        return initial

    def service_fields(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        data["blocked_topics"] = _lines(data["blocked_topics"])
        return data


class ChainEntryForm(forms.Form):
    """One row of the model chain: provider, model, parameters."""

    provider = forms.ChoiceField(choices=[(p, PROVIDER_LABELS[p]) for p in PROVIDERS])
    model = forms.ChoiceField(
        choices=model_choices,
        required=False,
        help_text="Price per million tokens (input / output) and context window.",
    )
    model_name = forms.CharField(
        max_length=120,
        required=False,
        label="Model name",
        help_text="For an OpenAI-compatible server: the name it knows the model by (e.g. llama3.1:8b).",
    )
    # A CharField: the egress guard (bots.validation.check_base_url) judges the URL and says why.
    base_url = forms.CharField(
        max_length=500,
        required=False,
        label="Base URL",
        help_text="For an OpenAI-compatible server, e.g. https://models.example.com/v1. Empty: the provider key's URL.",
    )
    temperature = forms.FloatField(required=False, min_value=0, max_value=2, help_text="0 to 2; empty: the bot's.")
    max_tokens = forms.IntegerField(
        required=False, min_value=1, max_value=32_000, help_text="Empty: the bot's max answer tokens, never more."
    )
    top_p = forms.FloatField(required=False, min_value=0, max_value=1, help_text="0 to 1; empty: the provider's.")

    @classmethod
    def initial_for(cls, entry: dict[str, Any]) -> dict[str, Any]:
        params = entry.get("params") or {}
        provider = entry.get("provider", "offline")
        custom = provider == "openai_compatible"
        return {
            "provider": provider,
            "model": "" if custom else entry.get("model", ""),
            "model_name": entry.get("model", "") if custom else "",
            "base_url": params.get("base_url", ""),
            **{name: params.get(name) for name in ("temperature", "max_tokens", "top_p")},
        }

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        provider = data.get("provider")
        if provider == "openai_compatible":
            name = (data.get("model_name") or "").strip()
            if not name:
                self.add_error("model_name", "Give the model's name on that server.")
            data["model"] = name
        elif provider == "offline":
            data["model"] = "extractive"
        elif provider and data.get("model"):
            try:
                validation.check_catalog_model(provider, data["model"])
            except ValidationError as exc:
                self.add_error("model", exc.message_dict["model"])
        elif provider:
            self.add_error("model", "Pick a model.")
        if data.get("base_url"):
            if provider != "openai_compatible":
                self.add_error("base_url", "A base URL is only for an OpenAI-compatible server.")
            else:
                try:
                    data["base_url"] = validation.check_base_url(data["base_url"])
                except ValidationError as exc:
                    self.add_error("base_url", exc.message_dict["base_url"])
        return data

    def entry(self) -> dict[str, Any]:
        """The chain entry (the model_chain JSON's shape) from a valid row."""
        data = self.cleaned_data
        params = {name: data[name] for name in ("temperature", "max_tokens", "top_p") if data.get(name) is not None}
        if data.get("base_url"):
            params["base_url"] = data["base_url"]
        return {"provider": data["provider"], "model": data["model"], "params": params}


class BaseChainFormSet(BaseFormSet):
    default_error_messages = {
        "too_many_forms": f"The model chain can have at most {validation.MAX_CHAIN} entries.",
        "too_few_forms": "The model chain needs at least one entry.",
    }

    def add_fields(self, form: forms.Form, index: int | None) -> None:
        super().add_fields(form, index)
        form.fields["ORDER"].label = "Position"
        form.fields["ORDER"].help_text = "1 is the primary; saving sorts the rows by it."
        form.fields["DELETE"].label = "Remove when saving"

    def entries(self) -> list[dict[str, Any]]:
        """The rows in their chosen order (the Position field), removed rows left out."""
        return [form.entry() for form in self.ordered_forms]

    def clean(self) -> None:
        super().clean()
        if any(self.errors):
            return
        kept = [form for form in self.forms if not (self.can_delete and form.cleaned_data.get("DELETE"))]
        if not kept:
            raise forms.ValidationError("The model chain needs at least one entry.")


ChainFormSet: type[BaseChainFormSet] = formset_factory(  # type: ignore[assignment]
    ChainEntryForm,
    formset=BaseChainFormSet,
    extra=0,
    can_order=True,
    can_delete=True,
    max_num=validation.MAX_CHAIN,
    validate_max=True,
    absolute_max=validation.MAX_CHAIN * 2,
)
CHAIN_PREFIX = "chain"


def chain_formset(data: Any = None, *, chain: list[dict[str, Any]] | None = None) -> BaseChainFormSet:
    """The chain editor's formset: bound to POST data, or showing `chain`."""
    if data is not None:
        return ChainFormSet(data, prefix=CHAIN_PREFIX)
    initial = [ChainEntryForm.initial_for(entry) for entry in chain or []]
    return ChainFormSet(initial=initial, prefix=CHAIN_PREFIX)


def chain_rows_from_post(data: Any) -> list[dict[str, Any]]:
    """The rows as posted, unvalidated, in the order they were shown (for add/move/remove, which
    re-show the editor without saving)."""
    try:
        total = min(int(data.get(f"{CHAIN_PREFIX}-TOTAL_FORMS", 0)), validation.MAX_CHAIN * 2)
    except ValueError:
        total = 0
    fields = ("provider", "model", "model_name", "base_url", "temperature", "max_tokens", "top_p")
    return [{name: data.get(f"{CHAIN_PREFIX}-{i}-{name}", "") for name in fields} for i in range(total)]


def chain_formset_from_rows(rows: list[dict[str, Any]]) -> BaseChainFormSet:
    """An unbound formset showing `rows` (posted values), numbered in their new order."""
    return ChainFormSet(initial=rows, prefix=CHAIN_PREFIX)
