"""Operators' admin. Admin sees every tenant, so each queryset says .unscoped() explicitly."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import SimpleTemplateResponse

from . import services
from .context import get_current_tenant_or_none, tenant_context
from .models import ApiKey, AuditEvent, Invitation, Membership, Tenant


def operator_audit(
    request: HttpRequest, *, action: str, target: models.Model, details: dict[str, Any] | None = None
) -> None:
    """Record an operator's admin action in the audit log: every app's admin actions call this."""
    services.audit_record(action=action, actor=request.user, target=target, details=details, is_operator=True)


class UnscopedAdmin(admin.ModelAdmin):
    """Lists every tenant's rows; a row's own page runs in that row's tenant context.

    So its form's choices (a bot's knowledge bases, a document's knowledge base) and inlines read
    through the scoped managers as the dashboard does: only the same tenant's rows can be chosen,
    and a save of another tenant's row is refused (CrossTenantWrite). The add page has no tenant
    yet: its choices say .unscoped() explicitly.
    """

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        qs = self.model.objects.unscoped().select_related("tenant")
        ordering = self.get_ordering(request)
        return qs.order_by(*ordering) if ordering else qs

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        tenant = None
        if object_id is not None:
            try:
                row = self.get_queryset(request).filter(pk=unquote(object_id)).first()
            except (ValueError, ValidationError):
                row = None  # the admin's own get_object answers "not found"
            tenant = row.tenant if row is not None else None
        with tenant_context(tenant):
            response = super().changeform_view(request, object_id, form_url, extra_context)
            # Rendered here, inside the context: the inlines' forms read their rows while rendering.
            if isinstance(response, SimpleTemplateResponse) and not response.is_rendered:
                response.render()
            return response

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        manager = db_field.related_model._default_manager
        if "queryset" not in kwargs and hasattr(manager, "unscoped") and get_current_tenant_or_none() is None:
            kwargs["queryset"] = manager.unscoped()
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        manager = db_field.related_model._default_manager
        if "queryset" not in kwargs and hasattr(manager, "unscoped") and get_current_tenant_or_none() is None:
            kwargs["queryset"] = manager.unscoped()
        return super().formfield_for_manytomany(db_field, request, **kwargs)


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
