"""Events arrive more than once and in any order; the result is whatever the Stripe API holds."""

from __future__ import annotations

import itertools
import json
import threading
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.db import connection
from django.test import Client
from django.utils import timezone

from billing.models import StripeEvent, Subscription
from billing.quotas import effective_plan
from billing.services import subscription_sync_customer
from billing.webhooks import stripe_event_process, stripe_event_store
from tests.billing.conftest import PRICE_PRO, PRICE_STARTER, event_row
from tests.factories import TenantFactory

pytestmark = pytest.mark.usefixtures("plans")


def _customer_for(tenant, stripe_fake) -> str:
    """Give a tenant a Stripe customer, as the first Checkout does."""
    customer = stripe_fake.handle("POST", "/v1/customers", {}, {"name": tenant.name})
    Subscription.objects.unscoped().filter(tenant=tenant).update(stripe_customer_id=customer["id"])
    return customer["id"]


def _local(tenant) -> Subscription:
    return Subscription.objects.unscoped().select_related("plan").get(tenant=tenant)


def _assert_matches_stripe(tenant, stripe_fake, remote: dict) -> None:
    local = _local(tenant)
    assert local.stripe_subscription_id == remote["id"]
    assert local.status == remote["status"]
    assert local.plan.stripe_price_ids[0] == remote["items"]["data"][0]["price"]["id"]
    assert local.cancel_at_period_end == remote["cancel_at_period_end"]
    assert int(local.current_period_end.timestamp()) == remote["items"]["data"][0]["current_period_end"]


LIFECYCLE = ["customer.subscription.created", "customer.subscription.updated", "invoice.paid", "deleted"]


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))), ids=lambda o: "-".join(map(str, o)))
def test_every_ordering_of_a_subscriptions_events_ends_in_the_state_stripe_holds(
    world, stripe_fake, post_event, eager_celery, order
):
    customer = _customer_for(world.tenant_a, stripe_fake)
    sub = stripe_fake.create_subscription(customer, PRICE_STARTER, emit=False)
    created = stripe_fake._emit("customer.subscription.created", sub)
    updated = stripe_fake.update_subscription(sub["id"], price=PRICE_PRO, cancel_at_period_end=True)
    updated_event = stripe_fake.events[-1]
    paid = stripe_fake._pay_invoice(updated)
    paid_event = stripe_fake.events[-1]
    stripe_fake.cancel_subscription(sub["id"])
    deleted_event = stripe_fake.events[-1]
    events = [created, updated_event, paid_event, deleted_event]
    assert paid["subscription"] == sub["id"]

    for index in order:
        assert post_event(events[index]).status_code == 200

    _assert_matches_stripe(world.tenant_a, stripe_fake, stripe_fake.subscriptions[sub["id"]])
    assert _local(world.tenant_a).status == "canceled"
    assert effective_plan(tenant=world.tenant_a).is_default  # a canceled tenant is back on free limits
    assert {event_row(e).status for e in events} == {"processed"}


def test_a_live_subscription_wins_over_an_older_canceled_one_in_any_order(world, stripe_fake, post_event, eager_celery):
    customer = _customer_for(world.tenant_a, stripe_fake)
    old = stripe_fake.create_subscription(customer, PRICE_STARTER)
    stripe_fake.cancel_subscription(old["id"])
    new = stripe_fake.create_subscription(customer, PRICE_PRO)
    for event in reversed(stripe_fake.events_for(customer)):
        post_event(event)
    _assert_matches_stripe(world.tenant_a, stripe_fake, new)
    assert effective_plan(tenant=world.tenant_a).slug == "pro"


def test_a_redelivered_event_is_stored_once_and_processed_once(world, stripe_fake, post_event, eager_celery):
    customer = _customer_for(world.tenant_a, stripe_fake)
    stripe_fake.create_subscription(customer, PRICE_STARTER)
    event = stripe_fake.events_for(customer)[0]
    lists_before = stripe_fake.count_requests("GET", "/v1/subscriptions")
    # The first answer comes before processing (which is queued); redeliveries find it done.
    answers = [post_event(event).json()["status"] for _ in range(3)]
    assert answers == ["pending", "processed", "processed"]
    assert StripeEvent.objects.filter(stripe_id=event.id).count() == 1
    assert event_row(event).attempts == 1
    assert stripe_fake.count_requests("GET", "/v1/subscriptions") == lists_before + 1


@pytest.mark.django_db(transaction=True)
def test_the_same_event_delivered_ten_times_concurrently_has_exactly_one_effect(stripe_fake, eager_celery):
    from billing.services import plans_seed
    from tests.factories import MembershipFactory, UserFactory

    plans_seed()
    tenant = TenantFactory(slug="concurrent")
    MembershipFactory(tenant=tenant, user=UserFactory(username="payer"), role="owner")
    customer = _customer_for(tenant, stripe_fake)
    sub = stripe_fake.create_subscription(customer, PRICE_STARTER, emit=False)
    stripe_fake.fail_payment(sub["id"])
    failed = next(e for e in stripe_fake.events_for(customer) if e.type == "invoice.payment_failed")
    lists_before = stripe_fake.count_requests("GET", "/v1/subscriptions")
    mail.outbox.clear()
    barrier = threading.Barrier(10)
    statuses: list[int] = []

    def deliver() -> None:
        try:
            barrier.wait()
            headers = failed.signed_headers(stripe_fake.webhook_secret)
            response = Client().post(
                "/billing/stripe/webhook/",
                data=failed.payload,
                content_type="application/json",
                HTTP_STRIPE_SIGNATURE=headers["Stripe-Signature"],
            )
            statuses.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses == [200] * 10
    row = event_row(failed)
    assert (row.status, row.attempts) == ("processed", 1)
    assert StripeEvent.objects.filter(stripe_id=failed.id).count() == 1
    assert stripe_fake.count_requests("GET", "/v1/subscriptions") == lists_before + 1
    assert [m.subject for m in mail.outbox] == ["Payment failed for " + tenant.name]
    assert _local(tenant).status == "past_due"


def test_an_unknown_event_type_is_stored_and_ignored(db, stripe_fake, post_event, eager_celery):
    event = stripe_fake._emit("customer.tax_id.created", {"id": "txi_1", "customer": "cus_whoever"})
    requests_before = len(stripe_fake.requests)
    response = post_event(event)
    assert response.status_code == 200
    row = event_row(event)
    assert row.status == "ignored" and row.processed is not None
    assert row.payload["type"] == "customer.tax_id.created"
    assert len(stripe_fake.requests) == requests_before  # ignored without asking Stripe


def test_an_event_for_an_unknown_customer_is_stored_flagged_and_shown_to_operators(
    client, world, stripe_fake, post_event, eager_celery
):
    stranger = stripe_fake.handle("POST", "/v1/customers", {}, {"name": "Not ours"})
    stripe_fake.create_subscription(stranger["id"], PRICE_STARTER)
    event = stripe_fake.events_for(stranger["id"])[0]
    assert post_event(event).status_code == 200
    row = event_row(event)
    assert row.status == "unmatched" and row.tenant is None
    assert stranger["id"] in row.error
    operator = get_user_model().objects.create_superuser("op", "op@example.com", "pw-for-op-123")
    client.force_login(operator)
    page = client.get("/admin/billing/stripeevent/?status__exact=unmatched").content.decode()
    assert event.id in page and stranger["id"] in page
    assert client.get(f"/admin/billing/stripeevent/{row.pk}/change/").status_code == 200


def test_a_price_no_plan_sells_fails_visibly_and_succeeds_on_replay_once_an_operator_maps_it(
    client, world, plans, stripe_fake, post_event, eager_celery, django_capture_on_commit_callbacks
):
    customer = _customer_for(world.tenant_a, stripe_fake)
    stripe_fake.create_subscription(customer, "price_legacy_2019", emit=False)
    event = stripe_fake._emit("customer.subscription.created", stripe_fake.subscriptions[_latest(stripe_fake)])
    post_event(event)
    row = event_row(event)
    assert row.status == "failed" and "price_legacy_2019" in row.error
    assert _local(world.tenant_a).plan.is_default

    plans["starter"].stripe_price_ids = [PRICE_STARTER, "price_legacy_2019"]
    plans["starter"].save()
    operator = get_user_model().objects.create_superuser("op", "op@example.com", "pw-for-op-123")
    client.force_login(operator)
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/admin/billing/stripeevent/", {"action": "replay", "_selected_action": [row.pk]})
    row.refresh_from_db()
    assert row.status == "processed" and row.error == ""
    assert _local(world.tenant_a).plan.slug == "starter"


def _latest(stripe_fake) -> str:
    return max(stripe_fake.subscriptions.values(), key=lambda s: s["created"])["id"]


def test_stripe_being_unreachable_leaves_the_event_failed_for_a_retry(world, stripe_fake):
    customer = _customer_for(world.tenant_a, stripe_fake)
    stripe_fake.create_subscription(customer, PRICE_PRO)
    event = stripe_fake.events_for(customer)[0]
    row, _ = stripe_event_store(event=json.loads(event.payload))
    stripe_fake.fail_next.append(503)
    assert stripe_event_process(event_pk=row.pk).status == "failed"
    assert _local(world.tenant_a).plan.is_default
    assert stripe_event_process(event_pk=row.pk).status == "processed"
    assert _local(world.tenant_a).plan.slug == "pro"
    row.refresh_from_db()
    assert row.attempts == 2


def test_a_failed_payment_keeps_the_plan_for_the_grace_period_then_falls_back_without_losing_data(
    world, stripe_fake, post_event, eager_celery, settings
):
    customer = _customer_for(world.tenant_a, stripe_fake)
    sub = stripe_fake.create_subscription(customer, PRICE_PRO)
    stripe_fake.fail_payment(sub["id"])
    mail.outbox.clear()
    for event in stripe_fake.events_for(customer):
        post_event(event)
    local = _local(world.tenant_a)
    assert local.status == "past_due" and local.past_due_since is not None
    assert effective_plan(tenant=world.tenant_a).slug == "pro"
    assert [m.to for m in mail.outbox] == [[world.alice.email]]  # owners only
    alice = world.client_for(world.alice)
    assert "Your last payment failed" in alice.get("/t/acme/").content.decode()
    assert "Your last payment failed" not in world.client_for(world.charlie).get("/t/bravo/").content.decode()

    Subscription.objects.unscoped().filter(pk=local.pk).update(
        past_due_since=timezone.now() - timedelta(days=settings.BILLING_GRACE_DAYS, minutes=1)
    )
    assert effective_plan(tenant=world.tenant_a).is_default
    assert "limits apply now" in alice.get("/t/acme/").content.decode()
    assert _local(world.tenant_a).stripe_customer_id == customer  # nothing about the tenant was removed

    stripe_fake.pay_invoice(sub["id"])
    for event in stripe_fake.events_for(customer)[-2:]:
        post_event(event)
    assert _local(world.tenant_a).past_due_since is None
    assert effective_plan(tenant=world.tenant_a).slug == "pro"
    assert "billing-banner" not in alice.get("/t/acme/").content.decode()


def test_sync_refuses_an_empty_or_unknown_customer_id(db):
    from billing.services import UnknownCustomer

    for customer in ["", "cus_nobody"]:
        with pytest.raises(UnknownCustomer):
            subscription_sync_customer(customer_id=customer)


def test_an_event_with_an_expanded_customer_object_finds_its_tenant(world, stripe_fake, post_event, eager_celery):
    customer = _customer_for(world.tenant_a, stripe_fake)
    sub = stripe_fake.create_subscription(customer, PRICE_STARTER, emit=False)
    event = stripe_fake._emit("customer.subscription.updated", {**sub, "customer": {"id": customer}})
    post_event(event)
    assert event_row(event).tenant_id == world.tenant_a.pk


def test_the_processing_task_retries_when_stripe_fails(world, stripe_fake, post_event, eager_celery):
    customer = _customer_for(world.tenant_a, stripe_fake)
    stripe_fake.create_subscription(customer, PRICE_PRO, emit=False)
    event = stripe_fake._emit("customer.subscription.created", stripe_fake.subscriptions[_latest(stripe_fake)])
    stripe_fake.fail_next.append(503)
    post_event(event)
    row = event_row(event)
    assert (row.status, row.attempts, row.error) == ("processed", 2, "")
    assert _local(world.tenant_a).plan.slug == "pro"
