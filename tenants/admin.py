"""Operators' admin. Admin sees every tenant, so each queryset says .unscoped() explicitly."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest

from . import services
from .models import ApiKey, AuditEvent, Invitation, Membership, Tenant


def operator_audit(
    request: HttpRequest, *, action: str, target: models.Model, details: dict[str, Any] | None = None
) -> None:
    """Record an operator's admin action in the audit log: every app's admin actions call this."""
    services.audit_record(action=action, actor=request.user, target=target, details=details, is_operator=True)


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

    @admin.action(description="Suspend selected tenants (closes their open sockets)")
    def suspend(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        tenants = list(queryset)
        for tenant in tenants:
            was = tenant.status
            services.tenant_suspend(tenant=tenant)
            operator_audit(request, action="tenant.suspend", target=tenant, details={"from": was})
        messages.success(request, f"Suspended {len(tenants)} tenant(s).")

    @admin.action(description="Reactivate selected tenants")
    def reactivate(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        tenants = list(queryset)
        for tenant in tenants:
            was = tenant.status
            services.tenant_reactivate(tenant=tenant)
            operator_audit(request, action="tenant.reactivate", target=tenant, details={"from": was})
        messages.success(request, f"Reactivated {len(tenants)} tenant(s).")


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


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """The audit log: evidence, so nobody adds, changes or deletes a row here (not even superusers)."""

    list_display = ["created", "actor_label", "is_operator", "action", "target_type", "target_label", "tenant"]
    list_filter = ["is_operator", "action", "target_type"]
    list_select_related = ["tenant"]
    search_fields = ["actor_label", "action", "target_label", "target_id", "tenant__slug"]
    date_hierarchy = "created"
    readonly_fields = [f.name for f in AuditEvent._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
