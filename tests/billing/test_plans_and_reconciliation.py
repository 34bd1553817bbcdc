"""The seeded plan set, the daily re-sync from Stripe, and what operators see."""

from __future__ import annotations

import io

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command

from billing.models import Plan, Subscription
from billing.services import plan_default
from billing.tasks import subscriptions_reconcile
from tests.billing.conftest import PRICE_PRO, PRICE_STARTER


def test_a_fresh_database_has_free_as_the_default_and_paid_plans_to_pick(db):
    plans = {p.slug: p for p in Plan.objects.all()}
    assert {"free", "starter", "pro"} <= set(plans)
    assert plan_default() == plans["free"]
    assert plans["free"].price_monthly_cents == 0 and plans["free"].max_messages_per_month == 200
    assert plans["starter"].trial_days == 14 and plans["pro"].allows_overage


def test_seeding_fills_missing_price_ids_and_keeps_operator_edits(db):
    Plan.objects.filter(slug="starter").update(stripe_price_ids=[], max_bots=7, name="Starter+")
    Plan.objects.filter(slug="pro").delete()
    out = io.StringIO()
    call_command("billing_seed_plans", stdout=out)
    call_command("billing_seed_plans", stdout=out)
    starter = Plan.objects.get(slug="starter")
    assert starter.stripe_price_ids == [PRICE_STARTER]
    assert (starter.max_bots, starter.name) == (7, "Starter+")
    assert Plan.objects.get(slug="pro").stripe_price_ids == [PRICE_PRO]
    assert Plan.objects.filter(is_default=True).count() == 1
    assert "starter: Starter+ (price_starter_monthly)" in out.getvalue()


def test_seeding_never_adds_a_second_default_plan(db):
    Plan.objects.update(is_default=False)
    custom = Plan.objects.create(name="Hobby", slug="hobby", is_default=True)
    Plan.objects.filter(slug="free").delete()
    call_command("billing_seed_plans", stdout=io.StringIO())
    assert list(Plan.objects.filter(is_default=True)) == [custom]


def test_the_daily_reconciliation_is_scheduled():
    entry = settings.CELERY_BEAT_SCHEDULE["billing-reconcile-subscriptions"]
    assert entry["task"] == "billing.tasks.subscriptions_reconcile"
    assert entry["schedule"] == 24 * 60 * 60


def test_reconciliation_repairs_a_subscription_whose_webhooks_were_lost(world, plans, stripe_fake, eager_celery):
    customer = stripe_fake.handle("POST", "/v1/customers", {}, {"name": "Acme"})["id"]
    Subscription.objects.unscoped().filter(tenant=world.tenant_a).update(stripe_customer_id=customer)
    sub = stripe_fake.create_subscription(customer, PRICE_STARTER)  # its events are never delivered
    stripe_fake.update_subscription(sub["id"], price=PRICE_PRO, status="past_due")
    requests_before = stripe_fake.count_requests("GET", "/v1/subscriptions")

    assert subscriptions_reconcile.delay().get() == 1  # only tenants with a Stripe customer

    local = Subscription.objects.unscoped().select_related("plan").get(tenant=world.tenant_a)
    assert (local.plan.slug, local.status, local.stripe_subscription_id) == ("pro", "past_due", sub["id"])
    assert local.synced_at is not None
    assert stripe_fake.count_requests("GET", "/v1/subscriptions") == requests_before + 1
    assert Subscription.objects.unscoped().get(tenant=world.tenant_b).plan.is_default


def test_operators_see_every_tenants_plan_usage_and_stripe_events(client, world, plans):
    operator = get_user_model().objects.create_superuser("op", "op@example.com", "pw-for-op-123")
    client.force_login(operator)
    for url in [
        "/admin/billing/plan/",
        f"/admin/billing/plan/{plans['pro'].pk}/change/",
        "/admin/billing/subscription/",
        "/admin/billing/subscription/?status__exact=past_due",
        "/admin/billing/usagecounter/",
        "/admin/billing/stripeevent/",
        "/admin/billing/stripeevent/?q=cus_",
    ]:
        assert client.get(url).status_code == 200, url
    page = client.get("/admin/billing/subscription/").content.decode()
    assert "Acme" in page and "Bravo" in page
    assert client.get("/admin/billing/stripeevent/add/").status_code == 403


@pytest.mark.parametrize("path", ["/admin/billing/stripeevent/", "/admin/billing/subscription/"])
def test_tenant_owners_are_not_operators(world, path):
    assert world.client_for(world.alice).get(path).status_code == 302
