"""Operators' admin. Admin sees every tenant, so each queryset says .unscoped() explicitly."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from . import services
from .models import ApiKey, Invitation, Membership, Tenant


class UnscopedAdmin(admin.ModelAdmin):
    def get_queryset(self, request: HttpRequest) -> QuerySet:
        qs = self.model.objects.unscoped().select_related("tenant")
        ordering = self.get_ordering(request)
        return qs.order_by(*ordering) if ordering else qs


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "status", "created"]
    list_filter = ["status"]
    search_fields = ["name", "slug"]
    actions = ["suspend", "reactivate"]

    @admin.action(description="Suspend selected tenants")
    def suspend(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        for tenant in queryset:
            services.tenant_suspend(tenant=tenant)
        messages.success(request, f"Suspended {queryset.count()} tenant(s).")

    @admin.action(description="Reactivate selected tenants")
    def reactivate(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        for tenant in queryset:
            services.tenant_reactivate(tenant=tenant)
        messages.success(request, f"Reactivated {queryset.count()} tenant(s).")


@admin.register(Membership)
class MembershipAdmin(UnscopedAdmin):
    list_display = ["user", "tenant", "role", "created"]
    list_filter = ["role"]
    search_fields = ["user__email", "tenant__slug"]
    raw_id_fields = ["user", "tenant"]


@admin.register(Invitation)
class InvitationAdmin(UnscopedAdmin):
    list_display = ["email", "tenant", "role", "created", "expires", "accepted", "revoked"]
    list_filter = ["role"]
    search_fields = ["email", "tenant__slug"]
    exclude = ["token_hash"]
    raw_id_fields = ["tenant", "invited_by", "accepted_by"]


@admin.register(ApiKey)
class ApiKeyAdmin(UnscopedAdmin):
    list_display = ["name", "tenant", "prefix", "created", "last_used", "revoked"]
    search_fields = ["name", "prefix", "tenant__slug"]
    readonly_fields = ["prefix", "key_hash", "last_used"]
    raw_id_fields = ["tenant", "created_by"]
