"""Replaying a Stripe event from the admin re-runs its handler, idempotently, and is audited."""

from __future__ import annotations

from django.contrib.auth import get_user_model

from billing.models import StripeEvent, Subscription
from billing.services import subscription_start_free
from tenants.context import tenant_context
from tenants.models import AuditEvent

from .conftest import PRICE_PRO, event_row


def test_replaying_a_processed_event_twice_from_the_admin_leaves_one_result_and_two_audit_rows(
    client, world, plans, stripe_fake, post_event, eager_celery, django_capture_on_commit_callbacks
):
    subscription_start_free(tenant=world.tenant_a)
    customer = stripe_fake.handle("POST", "/v1/customers", {}, {"name": world.tenant_a.name})["id"]
    Subscription.objects.unscoped().filter(tenant=world.tenant_a).update(stripe_customer_id=customer)
    stripe_fake.create_subscription(customer, PRICE_PRO)
    event = stripe_fake.events_for(customer)[0]
    post_event(event)
    row = event_row(event)
    assert row.status == "processed"
    operator = get_user_model().objects.create_superuser("op", "op@example.com", "pw-for-op-123")
    client.force_login(operator)

    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            client.post("/admin/billing/stripeevent/", {"action": "replay", "_selected_action": [row.pk]})

    row.refresh_from_db()
    assert row.status == "processed" and row.attempts == 3
    with tenant_context(world.tenant_a):
        subscription = Subscription.objects.get()
    assert subscription.plan.slug == "pro" and StripeEvent.objects.count() == 1
    rows = list(AuditEvent.objects.filter(action="stripe_event.replay"))
    assert len(rows) == 2 and all(r.actor_id == operator.pk and r.is_operator for r in rows)
    assert rows[0].target_id == str(row.pk) and rows[0].details["type"] == event.type
