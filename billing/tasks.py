"""Celery entry points for billing: ids in, one service call each."""

from __future__ import annotations

from celery import shared_task

from tenants.context import tenant_task
from tenants.models import Tenant

from . import services, webhooks
from .models import LIVE_STATUSES, StripeEvent, Subscription


# Not a tenant_task: a Stripe event names a customer, and which tenant (if any) owns it is
# only known once processing looks the customer up.
@shared_task(bind=True, max_retries=8, acks_late=True)
def stripe_event_process_task(self, *, event_pk: int) -> str:
    event = webhooks.stripe_event_process(event_pk=event_pk)
    if event.status == StripeEvent.Status.FAILED:
        # Stripe or our data was not ready; back off (30 s ... ~1 h), then stay failed for replay.
        raise self.retry(countdown=min(3600, 30 * 2**self.request.retries))
    return event.status


@shared_task
@tenant_task
def subscription_sync(*, tenant_id: int) -> None:
    services.subscription_sync_tenant(tenant=Tenant.objects.get(pk=tenant_id))


@shared_task
def subscriptions_reconcile() -> int:
    """Daily: re-sync every tenant that has a Stripe customer, one task each."""
    tenant_ids = list(
        Subscription.objects.unscoped().exclude(stripe_customer_id="").values_list("tenant_id", flat=True)
    )
    for tenant_id in tenant_ids:
        subscription_sync.delay(tenant_id=tenant_id)
    return len(tenant_ids)


@shared_task
@tenant_task
def overage_report(*, tenant_id: int) -> int:
    return services.usage_overage_report(tenant=Tenant.objects.get(pk=tenant_id))


@shared_task
def overage_report_all() -> int:
    """Hourly: report over-limit messages of paid tenants whose plan allows overage."""
    tenant_ids = list(
        Subscription.objects.unscoped()
        .filter(plan__allows_overage=True, status__in=LIVE_STATUSES)
        .exclude(stripe_customer_id="")
        .values_list("tenant_id", flat=True)
    )
    for tenant_id in tenant_ids:
        overage_report.delay(tenant_id=tenant_id)
    return len(tenant_ids)
