"""Operators' admin for webhooks: every tenant's endpoints, deliveries and attempts.

Endpoints are changed by their tenant on the dashboard (where the URL passes the egress guard at
save); here an operator reads them and may only switch one off. Deliveries and attempts are a log."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from tenants.admin import UnscopedAdmin

from .models import Delivery, DeliveryAttempt, Endpoint


class LogAdmin(UnscopedAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Endpoint)
class EndpointAdmin(UnscopedAdmin):
    list_display = ("url", "tenant", "enabled", "consecutive_failures", "created")
    list_filter = ("enabled",)
    search_fields = ("url", "tenant__slug")
    fields = ("tenant", "url", "description", "events", "secret_prefix", "enabled", "disabled_reason")
    readonly_fields = ("tenant", "url", "description", "events", "secret_prefix")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Delivery)
class DeliveryAdmin(LogAdmin):
    list_display = ("event_type", "event_id", "tenant", "status", "attempts", "created")
    list_filter = ("status", "event_type")
    search_fields = ("event_id", "tenant__slug")
    raw_id_fields = ("endpoint",)


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(LogAdmin):
    list_display = ("delivery", "number", "tenant", "ok", "status_code", "latency_ms", "created")
    list_filter = ("ok",)
    search_fields = ("delivery__event_id", "tenant__slug")
    raw_id_fields = ("delivery",)
