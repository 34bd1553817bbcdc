"""The whole self-serve path in one test: signup, Checkout, Stripe's webhooks over HTTP to a
real daphne, processing on a real Celery worker, and the paid plan in effect."""

from __future__ import annotations

import time

import pytest
from django.test import Client

from billing.models import StripeEvent, Subscription
from billing.quotas import QuotaExceeded, effective_plan, quota_check
from billing.services import plans_seed, usage_record
from tenants.models import Membership

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _wait_for(predicate, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")


def test_a_stranger_signs_up_pays_with_stripe_and_gets_the_paid_plan(live_daphne, live_worker, stripe_fake):
    plans_seed()  # transactional tests start from empty tables
    browser = Client()
    signup = browser.post(
        "/accounts/signup/",
        {
            "email": "founder@example.com",
            "password1": "a-strong passphrase 42",
            "password2": "a-strong passphrase 42",
            "organisation": "Paying Co",
        },
    )
    assert signup.status_code == 302
    tenant = Membership.objects.unscoped().get(user__email="founder@example.com").tenant
    assert effective_plan(tenant=tenant).is_default
    usage_record(tenant=tenant, messages=200)
    with pytest.raises(QuotaExceeded):
        quota_check(tenant=tenant, kind="messages")

    billing = browser.get(f"/t/{tenant.slug}/billing/")
    assert "Choose Pro" in billing.content.decode()
    checkout = browser.post(f"/t/{tenant.slug}/billing/checkout/", {"plan": "pro"})
    assert checkout.status_code == 302 and checkout["Location"].startswith(stripe_fake.base_url)

    # The customer pays on Stripe's page; Stripe sends its events, newest first for good measure.
    session_id = checkout["Location"].rsplit("/", 1)[-1]
    remote = stripe_fake.complete_checkout(session_id)
    events = stripe_fake.events_for(remote["customer"])
    assert {e.type for e in events} == {"checkout.session.completed", "customer.subscription.created", "invoice.paid"}
    for event in reversed(events):
        assert stripe_fake.deliver(event, f"{live_daphne}/billing/stripe/webhook/") == 200

    _wait_for(
        lambda: StripeEvent.objects.filter(stripe_id__in=[e.id for e in events], status="processed").count() == 3,
        "the worker to process the three events",
    )
    subscription = Subscription.objects.unscoped().select_related("plan").get(tenant=tenant)
    assert (subscription.plan.slug, subscription.status) == ("pro", "active")
    assert subscription.stripe_subscription_id == remote["id"]
    assert effective_plan(tenant=tenant).slug == "pro"
    quota_check(tenant=tenant, kind="messages")
    assert "Your plan: Pro" in browser.get(f"/t/{tenant.slug}/billing/").content.decode()
