from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from .models import Delivery, Endpoint


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    list_display = ("url", "tenant", "enabled", "consecutive_failures", "created")
    list_filter = ("enabled",)
    search_fields = ("url", "tenant__slug")
    exclude = ("secret_encrypted", "previous_secret_encrypted")

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return Endpoint.objects.unscoped().select_related("tenant")  # operators see every tenant's


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ("event_type", "event_id", "tenant", "status", "attempts", "created")
    list_filter = ("status", "event_type")
    search_fields = ("event_id",)
    raw_id_fields = ("endpoint",)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return Delivery.objects.unscoped().select_related("tenant")
