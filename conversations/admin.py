"""Operators' admin for conversations, messages and traces (every tenant, read-only)."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from tenants.admin import UnscopedAdmin

from .models import (
    Conversation,
    DailyQuestion,
    DailyRollup,
    GapGroup,
    GapItem,
    GapScan,
    Lead,
    Message,
    Trace,
)


class ReadOnlyAdmin(UnscopedAdmin):
    """Conversations are evidence: operators read them, nobody edits them here."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Conversation)
class ConversationAdmin(ReadOnlyAdmin):
    list_display = ["id", "tenant", "bot", "channel", "visitor_id", "started", "last_active"]
    list_filter = ["channel"]
    search_fields = ["visitor_id", "external_user_id", "tenant__slug", "bot__name"]
    list_select_related = ["tenant", "bot"]


@admin.register(Message)
class MessageAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "tenant",
        "conversation",
        "role",
        "status",
        "model",
        "tokens_in",
        "tokens_out",
        "cost",
        "created",
    ]
    list_filter = ["role", "status", "error_code"]
    search_fields = ["content", "tenant__slug"]
    list_select_related = ["tenant", "conversation"]


@admin.register(Trace)
class TraceAdmin(ReadOnlyAdmin):
    list_display = ["id", "tenant", "message", "created"]
    search_fields = ["tenant__slug"]
    list_select_related = ["tenant", "message"]


@admin.register(Lead)
class LeadAdmin(ReadOnlyAdmin):
    list_display = ["id", "tenant", "bot", "name", "email", "reason", "consent", "created"]
    list_filter = ["reason", "consent"]
    search_fields = ["name", "email", "phone", "visitor_id", "tenant__slug"]
    list_select_related = ["tenant", "bot"]


@admin.register(GapGroup)
class GapGroupAdmin(ReadOnlyAdmin):
    list_display = ["id", "tenant", "bot", "representative", "size", "dismissed", "last_seen"]
    list_filter = ["dismissed"]
    search_fields = ["tenant__slug", "bot__name"]
    list_select_related = ["tenant", "bot", "representative"]
    exclude = ["centroid"]


@admin.register(GapItem)
class GapItemAdmin(ReadOnlyAdmin):
    list_display = ["id", "tenant", "group", "kind", "question", "created"]
    list_filter = ["kind"]
    search_fields = ["question", "tenant__slug"]
    list_select_related = ["tenant", "group"]
    exclude = ["embedding"]


@admin.register(DailyRollup)
class DailyRollupAdmin(ReadOnlyAdmin):
    list_display = [
        "day",
        "tenant",
        "bot",
        "conversations",
        "messages",
        "answered",
        "unanswered",
        "provider_errors",
        "cost",
    ]
    list_filter = ["day"]
    search_fields = ["tenant__slug", "bot__name"]
    list_select_related = ["tenant", "bot"]


@admin.register(DailyQuestion)
class DailyQuestionAdmin(ReadOnlyAdmin):
    list_display = ["day", "tenant", "bot", "text", "count"]
    search_fields = ["text", "tenant__slug"]
    list_select_related = ["tenant", "bot"]


@admin.register(GapScan)
class GapScanAdmin(admin.ModelAdmin):
    """The knowledge-gap scanner's high-water mark (not tenant-owned). Read-only."""

    list_display = ["id", "upto"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
