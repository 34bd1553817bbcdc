"""The operators' tenant page, and admin for the framework's own models.

The tenant page reads and acts across apps (billing's plan and usage, bots, knowledge, the
answers' errors), so it lives here, above them: it replaces tenants' plain TenantAdmin and keeps
its suspend and reactivate actions. Every action is written to the audit log (tenants.AuditEvent).
"""

from __future__ import annotations

from datetime import UTC, datetime, time

from allauth.account.models import EmailConfirmation
from django import forms
from django.contrib import admin, messages
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.contrib.sessions.models import Session
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.utils.safestring import SafeString

from billing.models import Plan
from billing.services import subscription_comp_end, subscription_comp_grant
from chatbot_saas.errors import AppError
from knowledge.admin import documents_retry_failed
from knowledge.models import Document
from tenants.admin import TenantAdmin, operator_audit
from tenants.admin_actions import action_form
from tenants.models import Tenant

from .operator import tenant_overview


class CompForm(forms.Form):
    plan = forms.ModelChoiceField(queryset=Plan.objects.all(), label="Plan")
    until = forms.DateField(label="Until (the comp ends at 00:00 UTC on this date)")
    note = forms.CharField(label="Why (kept in the audit log)", max_length=300, required=False)


admin.site.unregister(Tenant)


@admin.register(Tenant)
class OperatorTenantAdmin(TenantAdmin):
    list_display = ["name", "slug", "status", "created"]
    # Status changes go through the suspend/reactivate actions: they close sockets and are audited.
    readonly_fields = ["status", "created", "overview"]
    fields = ["name", "slug", "status", "created", "overview"]
    actions = ["suspend", "reactivate", "comp_plan", "end_comp", "retry_failed_documents"]

    @admin.display(description="Plan, usage, bots, knowledge and recent errors")
    def overview(self, tenant: Tenant) -> SafeString:
        if tenant.pk is None:
            return SafeString("")
        return SafeString(
            render_to_string("admin/operator/tenant_overview.html", {"o": tenant_overview(tenant=tenant)})
        )

    @admin.action(description="Comp a plan (no Stripe) until a date")
    def comp_plan(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> TemplateResponse | None:
        form, page = action_form(
            self, request, queryset, form_class=CompForm, action="comp_plan", title="Comp a plan", submit_label="Comp"
        )
        if form is None:
            return page
        plan: Plan = form.cleaned_data["plan"]
        until = datetime.combine(form.cleaned_data["until"], time.min, tzinfo=UTC)
        for tenant in queryset:
            try:
                subscription_comp_grant(tenant=tenant, plan=plan, until=until)
            except AppError as exc:
                messages.error(request, f"{tenant.slug}: {exc.message}")
                continue
            details = {"plan": plan.slug, "until": until.isoformat(), "note": form.cleaned_data["note"]}
            operator_audit(request, action="tenant.comp_plan", target=tenant, details=details)
            messages.success(request, f"{tenant.slug} is on {plan.name} until {until:%Y-%m-%d} (UTC).")
        return None

    @admin.action(description="End the comp now")
    def end_comp(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        for tenant in queryset:
            plan = subscription_comp_end(tenant=tenant)
            if plan is None:
                messages.info(request, f"{tenant.slug} has no comp.")
                continue
            operator_audit(request, action="tenant.end_comp", target=tenant, details={"plan": plan.slug})
            messages.success(request, f"{tenant.slug}: the {plan.name} comp ended.")

    @admin.action(description="Retry the failed documents of selected tenants")
    def retry_failed_documents(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        documents = Document.objects.unscoped().filter(tenant__in=queryset)
        queued, refused = documents_retry_failed(request, documents)
        messages.success(request, f"Queued {queued} failed document(s) again.")
        for line in refused:
            messages.warning(request, line)


class FrameworkReadOnlyAdmin(admin.ModelAdmin):
    """The framework's bookkeeping rows: visible to operators, written only by the framework."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(LogEntry)
class LogEntryAdmin(FrameworkReadOnlyAdmin):
    list_display = ["action_time", "user", "content_type", "object_repr", "action_flag"]
    list_filter = ["action_flag", "content_type"]
    search_fields = ["object_repr", "user__username", "user__email"]
    list_select_related = ["user", "content_type"]


@admin.register(Permission)
class PermissionAdmin(FrameworkReadOnlyAdmin):
    list_display = ["name", "content_type", "codename"]
    list_filter = ["content_type__app_label"]
    search_fields = ["name", "codename"]
    list_select_related = ["content_type"]


@admin.register(ContentType)
class ContentTypeAdmin(FrameworkReadOnlyAdmin):
    list_display = ["app_label", "model"]
    list_filter = ["app_label"]
    search_fields = ["model"]


@admin.register(Session)
class SessionAdmin(FrameworkReadOnlyAdmin):
    """How many sessions exist and when they expire; their data (who is signed in) stays hidden."""

    list_display = ["key_start", "expire_date"]
    exclude = ["session_data"]
    date_hierarchy = "expire_date"

    @admin.display(description="Session key (start)")
    def key_start(self, obj: Session) -> str:
        return obj.session_key[:6] + "…"


@admin.register(EmailConfirmation)
class EmailConfirmationAdmin(FrameworkReadOnlyAdmin):
    list_display = ["email_address", "created", "sent"]
    search_fields = ["email_address__email"]
    list_select_related = ["email_address"]
    exclude = ["key"]
