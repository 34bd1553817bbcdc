from django.contrib import admin

from tenants.admin import UnscopedAdmin

from .models import Plan, Subscription, UsageCounter


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "price_monthly_cents", "is_default", "is_public", "max_messages_per_month"]
    list_editable = ["is_public"]


@admin.register(Subscription)
class SubscriptionAdmin(UnscopedAdmin):
    list_display = ["tenant", "plan", "status", "current_period_end", "cancel_at_period_end"]
    list_filter = ["status", "plan"]
    search_fields = ["tenant__slug", "stripe_customer_id", "stripe_subscription_id"]


@admin.register(UsageCounter)
class UsageCounterAdmin(UnscopedAdmin):
    list_display = ["tenant", "period", "messages", "tokens_in", "tokens_out", "cost", "documents"]
    list_filter = ["period"]
    search_fields = ["tenant__slug"]
