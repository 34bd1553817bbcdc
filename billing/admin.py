from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from tenants.admin import UnscopedAdmin, operator_audit

from .models import Plan, StripeEvent, Subscription, UsageCounter
from .webhooks import stripe_event_replay


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "slug",
        "price_monthly_cents",
        "trial_days",
        "is_default",
        "is_public",
        "max_messages_per_month",
        "allows_overage",
    ]
    list_editable = ["is_public"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(Subscription)
class SubscriptionAdmin(UnscopedAdmin):
    list_display = [
        "tenant",
        "plan",
        "status",
        "current_period_end",
        "cancel_at_period_end",
        "past_due_since",
        "comp_plan",
        "comp_until",
        "synced_at",
    ]
    list_filter = ["status", "plan", "comp_plan"]
    list_select_related = ["tenant", "plan", "comp_plan"]
    search_fields = ["tenant__slug", "stripe_customer_id", "stripe_subscription_id"]
    raw_id_fields = ["tenant"]
    # Comps go through the tenant page's audited actions (comp a plan, end the comp).
    readonly_fields = ["synced_at", "comp_plan", "comp_until"]


@admin.register(UsageCounter)
class UsageCounterAdmin(UnscopedAdmin):
    list_display = ["tenant", "period", "messages", "tokens_in", "tokens_out", "cost", "documents", "storage_bytes"]
    list_filter = ["period"]
    search_fields = ["tenant__slug"]
    raw_id_fields = ["tenant"]


@admin.register(StripeEvent)
class StripeEventAdmin(admin.ModelAdmin):
    """Every webhook Stripe sent. Unmatched and failed events are the ones to look at."""

    list_display = ["stripe_id", "type", "status", "tenant", "customer_id", "received", "processed", "attempts"]
    list_filter = ["status", "type"]
    list_select_related = ["tenant"]
    search_fields = ["stripe_id", "customer_id", "tenant__slug"]
    readonly_fields = [f.name for f in StripeEvent._meta.fields]
    actions = ["replay"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Replay selected events (re-sync from Stripe)")
    def replay(self, request: HttpRequest, queryset: QuerySet[StripeEvent]) -> None:
        events = list(queryset)
        for event in events:
            was = event.status
            stripe_event_replay(event=event)
            operator_audit(
                request, action="stripe_event.replay", target=event, details={"type": event.type, "from": was}
            )
        messages.success(request, f"Queued {len(events)} event(s) for processing.")
