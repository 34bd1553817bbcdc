"""Operators' admin for bots. Admin sees every tenant, so querysets say .unscoped() explicitly.

Provider keys are listed by provider and hint only; the encrypted value is never shown.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest

from tenants.admin import UnscopedAdmin

from . import validation
from .models import (
    Bot,
    Correction,
    CorrectionVersion,
    EvalCase,
    EvalResult,
    EvalRun,
    HandoffSettings,
    PromptPublication,
    PromptVersion,
    ProviderCredential,
    WidgetOrigin,
)


class PromptVersionInline(admin.TabularInline):
    model = PromptVersion
    extra = 0
    fields = ["number", "note", "is_published", "author", "created"]
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return PromptVersion.objects.unscoped().select_related("author")

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class BotAdminForm(forms.ModelForm):
    """The admin edits the model directly, so it runs the services' checks on what it can change."""

    class Meta:
        model = Bot
        # The admin's own exclude: the form is built at import, where the scoped knowledge base
        # manager has no tenant; the admin shows what it did before this form.
        exclude = ["identity_secret", "knowledge_bases"]  # noqa: DJ006

    def clean_model_chain(self) -> Any:
        try:
            return validation.check_model_chain(self.cleaned_data["model_chain"])
        except ValidationError as exc:
            raise ValidationError(exc.message_dict["model_chain"]) from None


@admin.register(Bot)
class BotAdmin(UnscopedAdmin):
    form = BotAdminForm
    list_display = ["name", "tenant", "status", "answer_policy", "public_id", "created"]
    list_filter = ["status", "answer_policy"]
    search_fields = ["name", "public_id", "tenant__slug"]
    readonly_fields = ["public_id", "tenant"]
    exclude = ["identity_secret", "knowledge_bases"]
    inlines = [PromptVersionInline]


@admin.register(PromptVersion)
class PromptVersionAdmin(UnscopedAdmin):
    list_display = ["bot", "number", "is_published", "author", "created", "tenant"]
    list_filter = ["is_published"]
    search_fields = ["bot__name", "tenant__slug", "note"]
    readonly_fields = ["tenant", "bot", "number", "text", "author", "created", "is_published"]


@admin.register(PromptPublication)
class PromptPublicationAdmin(UnscopedAdmin):
    list_display = ["bot", "version", "previous", "action", "by", "score_drop", "confirmed_drop", "created", "tenant"]
    list_filter = ["action", "confirmed_drop"]
    readonly_fields = [
        "tenant",
        "bot",
        "version",
        "previous",
        "action",
        "by",
        "created",
        "eval_run",
        "score_drop",
        "confirmed_drop",
        "note",
    ]


@admin.register(ProviderCredential)
class ProviderCredentialAdmin(UnscopedAdmin):
    list_display = ["tenant", "provider", "key_hint", "base_url", "updated"]
    list_filter = ["provider"]
    search_fields = ["tenant__slug"]
    fields = ["tenant", "provider", "key_hint", "base_url", "created", "updated"]
    readonly_fields = fields


@admin.register(EvalCase)
class EvalCaseAdmin(UnscopedAdmin):
    list_display = ["question", "bot", "should_refuse", "created", "tenant"]
    list_filter = ["should_refuse"]
    search_fields = ["question", "bot__name", "tenant__slug"]
    readonly_fields = ["tenant", "bot", "created"]


class EvalResultInline(admin.TabularInline):
    model = EvalResult
    extra = 0
    fields = ["question", "score", "hit", "reciprocal_rank", "citation_accuracy", "refusal_correct", "flags"]
    readonly_fields = fields
    can_delete = False

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return EvalResult.objects.unscoped()

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(EvalRun)
class EvalRunAdmin(UnscopedAdmin):
    """Runs are results: read-only here (the gate decides through the dashboard)."""

    list_display = ["bot", "purpose", "status", "score", "gate", "created", "tenant"]
    list_filter = ["status", "purpose", "gate"]
    search_fields = ["bot__name", "tenant__slug"]
    readonly_fields = [
        "tenant",
        "bot",
        "status",
        "purpose",
        "gate",
        "prompt_version",
        "knowledge_base_ids",
        "baseline",
        "scores",
        "score",
        "error_code",
        "error_message",
        "by",
        "created",
        "finished",
    ]
    inlines = [EvalResultInline]


@admin.register(EvalResult)
class EvalResultAdmin(UnscopedAdmin):
    list_display = ["run", "question", "score", "hit", "refused", "refusal_correct", "latency_ms", "tenant"]
    list_filter = ["hit", "refused", "refusal_correct"]
    list_select_related = ["tenant", "run"]
    search_fields = ["question", "tenant__slug"]
    readonly_fields = [f.name for f in EvalResult._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(WidgetOrigin)
class WidgetOriginAdmin(UnscopedAdmin):
    """The pages a bot's widget was seen on; `allowed` is the tenant's to decide in the dashboard."""

    list_display = ["origin", "bot", "allowed", "first_seen", "last_seen", "tenant"]
    list_filter = ["allowed"]
    list_select_related = ["tenant", "bot"]
    search_fields = ["origin", "bot__name", "tenant__slug"]
    readonly_fields = ["tenant", "bot", "origin", "first_seen", "last_seen"]


class CorrectionVersionInline(admin.TabularInline):
    model = CorrectionVersion
    extra = 0
    fields = ["number", "question", "answer", "author", "created"]
    readonly_fields = ["number", "question", "answer", "author", "created"]
    can_delete = False

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return CorrectionVersion.objects.unscoped().select_related("author")

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Correction)
class CorrectionAdmin(UnscopedAdmin):
    """Read-only: a correction's text and embedding change together through correction_services."""

    list_display = ["question", "bot", "enabled", "version", "uses", "updated", "tenant"]
    list_filter = ["enabled", "embedding_model"]
    list_select_related = ["tenant", "bot"]
    search_fields = ["question", "answer", "bot__name", "tenant__slug"]
    exclude = ["embedding"]
    readonly_fields = [f.name for f in Correction._meta.fields if f.name != "embedding"]
    inlines = [CorrectionVersionInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(CorrectionVersion)
class CorrectionVersionAdmin(UnscopedAdmin):
    list_display = ["correction", "number", "author", "created", "tenant"]
    search_fields = ["question", "answer", "tenant__slug"]
    list_select_related = ["tenant", "correction", "author"]
    readonly_fields = [f.name for f in CorrectionVersion._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(HandoffSettings)
class HandoffSettingsAdmin(UnscopedAdmin):
    list_display = ["bot", "enabled", "on_request", "hours_enabled", "timezone", "lead_when", "tenant"]
    list_filter = ["enabled", "hours_enabled", "lead_when"]
    list_select_related = ["tenant", "bot"]
    search_fields = ["bot__name", "tenant__slug"]
    readonly_fields = ["tenant", "bot"]
