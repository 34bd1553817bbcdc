"""Writes for plans, subscriptions and usage."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from tenants.context import tenant_context
from tenants.models import Tenant

from .models import Plan, Subscription, UsageCounter

FREE_PLAN_DEFAULTS = {"name": "Free", "is_default": True, "price_monthly_cents": 0}


def plan_default() -> Plan:
    """The default (free) plan; created on first use so a fresh database always has one."""
    plan = Plan.objects.filter(is_default=True).order_by("pk").first()
    if plan is None:
        plan, _ = Plan.objects.get_or_create(slug="free", defaults=FREE_PLAN_DEFAULTS)
    return plan


def subscription_start_free(*, tenant: Tenant) -> Subscription:
    """Put a new tenant on the default plan. Idempotent."""
    with tenant_context(tenant):
        subscription, _ = Subscription.objects.get_or_create(
            tenant=tenant, defaults={"plan": plan_default(), "status": Subscription.Status.ACTIVE}
        )
    return subscription


def current_period(now: date | None = None) -> date:
    today = now or timezone.now().date()
    return today.replace(day=1)


@transaction.atomic
def usage_record(
    *,
    tenant: Tenant,
    messages: int = 0,
    tokens_in: int = 0,
    tokens_out: int = 0,
    cost: Decimal | float = 0,
    documents: int = 0,
    storage_bytes: int = 0,
) -> None:
    """Add to this period's counter with one atomic UPDATE (no read-modify-write race)."""
    period = current_period()
    with tenant_context(tenant):
        UsageCounter.objects.get_or_create(tenant=tenant, period=period)
        UsageCounter.objects.filter(period=period).update(
            messages=F("messages") + messages,
            tokens_in=F("tokens_in") + tokens_in,
            tokens_out=F("tokens_out") + tokens_out,
            cost=F("cost") + Decimal(str(cost)),
            documents=F("documents") + documents,
            storage_bytes=F("storage_bytes") + storage_bytes,
        )
