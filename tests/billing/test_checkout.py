"""Upgrading: the billing page, Stripe Checkout, the Customer Portal, and who may use them."""

from __future__ import annotations

import pytest

from billing.models import Subscription
from billing.quotas import QuotaExceeded, quota_check
from billing.services import usage_record
from tests.billing.conftest import PRICE_PRO, PRICE_STARTER

pytestmark = pytest.mark.usefixtures("plans")


def _subscription(tenant) -> Subscription:
    return Subscription.objects.unscoped().select_related("plan").get(tenant=tenant)


def _checkout(client, tenant, plan: str):
    return client.post(f"/t/{tenant.slug}/billing/checkout/", {"plan": plan})


def test_owner_sees_plans_usage_and_current_plan(world):
    page = world.client_for(world.alice).get("/t/acme/billing/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "Your plan: Free" in text
    assert "Choose Starter" in text and "Choose Pro" in text
    assert "messages this month" in text.lower()
    assert "Manage billing" not in text  # no Stripe customer yet


def test_the_nav_shows_billing_to_owners_only(world):
    assert b"/t/acme/billing/" in world.client_for(world.alice).get("/t/acme/").content
    assert b"/t/acme/billing/" not in world.client_for(world.bob).get("/t/acme/").content


def test_owner_checkout_creates_one_customer_and_a_subscription_mode_session(world, stripe_fake):
    client = world.client_for(world.alice)
    response = _checkout(client, world.tenant_a, "starter")
    assert response.status_code == 302
    session_id = response["Location"].rsplit("/", 1)[-1]
    session = stripe_fake.sessions[session_id]
    assert response["Location"] == session["url"]
    assert session["mode"] == "subscription"
    assert session["line_items"] == [{"price": PRICE_STARTER, "quantity": "1"}]
    assert session["subscription_data"]["trial_period_days"] == "14"
    assert session["client_reference_id"] == str(world.tenant_a.pk)
    assert session["success_url"].endswith("/t/acme/billing/checkout/success/")
    assert session["cancel_url"].endswith("/t/acme/billing/?checkout=canceled")
    customer_id = _subscription(world.tenant_a).stripe_customer_id
    assert session["customer"] == customer_id
    assert stripe_fake.customers[customer_id]["metadata"]["tenant_id"] == str(world.tenant_a.pk)

    second = _checkout(client, world.tenant_a, "pro")
    assert stripe_fake.sessions[second["Location"].rsplit("/", 1)[-1]]["customer"] == customer_id


def test_a_member_cannot_see_or_change_billing(world, stripe_fake):
    bob = world.client_for(world.bob)
    sessions_before = len(stripe_fake.sessions)
    assert bob.get("/t/acme/billing/").status_code == 403
    assert _checkout(bob, world.tenant_a, "starter").status_code == 403
    assert bob.post("/t/acme/billing/portal/").status_code == 403
    assert bob.get("/t/acme/billing/checkout/success/").status_code == 403
    assert len(stripe_fake.sessions) == sessions_before
    assert _subscription(world.tenant_a).stripe_customer_id == ""


def test_an_outsider_gets_404_for_another_workspaces_billing(world):
    charlie = world.client_for(world.charlie)
    assert charlie.get("/t/acme/billing/").status_code == 404
    assert _checkout(charlie, world.tenant_a, "starter").status_code == 404
    assert charlie.post("/t/acme/billing/portal/").status_code == 404


def test_checkout_is_post_only(world):
    assert world.client_for(world.alice).get("/t/acme/billing/checkout/").status_code == 405


@pytest.mark.parametrize("plan", ["", "nope", "free", "x" * 5000, "../starter", "starter\x00", "<script>"])
def test_checkout_for_a_plan_that_cannot_be_bought_creates_nothing(world, stripe_fake, plan):
    sessions_before = len(stripe_fake.sessions)
    client = world.client_for(world.alice)
    response = _checkout(client, world.tenant_a, plan)
    assert response.status_code == 302 and response["Location"] == "/t/acme/billing/"
    assert len(stripe_fake.sessions) == sessions_before
    page = client.get("/t/acme/billing/").content.decode()
    expected = "already on the Free plan" if plan == "free" else "no such plan"
    assert expected in page


def test_checkout_for_a_hidden_plan_is_refused(world, plans, stripe_fake):
    plans["pro"].is_public = False
    plans["pro"].save()
    sessions_before = len(stripe_fake.sessions)
    _checkout(world.client_for(world.alice), world.tenant_a, "pro")
    assert len(stripe_fake.sessions) == sessions_before


def _pay(stripe_fake, response, post_event) -> None:
    session_id = response["Location"].rsplit("/", 1)[-1]
    customer = stripe_fake.sessions[session_id]["customer"]
    stripe_fake.complete_checkout(session_id)
    for event in stripe_fake.events_for(customer):
        assert post_event(event).status_code == 200


def test_checkout_for_the_plan_the_tenant_already_has_is_refused(world, stripe_fake, post_event, eager_celery):
    client = world.client_for(world.alice)
    _pay(stripe_fake, _checkout(client, world.tenant_a, "starter"), post_event)
    assert _subscription(world.tenant_a).plan.slug == "starter"
    sessions_before = len(stripe_fake.sessions)
    response = _checkout(client, world.tenant_a, "starter")
    assert response["Location"] == "/t/acme/billing/"
    assert len(stripe_fake.sessions) == sessions_before
    assert "already on the Starter plan" in client.get("/t/acme/billing/").content.decode()
    # A second paid plan goes through the portal, so nobody pays two subscriptions.
    _checkout(client, world.tenant_a, "pro")
    assert len(stripe_fake.sessions) == sessions_before
    assert "Use Manage billing to switch plans" in client.get("/t/acme/billing/").content.decode()


def test_manage_billing_opens_the_customer_portal_for_the_tenants_customer(world, stripe_fake):
    client = world.client_for(world.alice)
    refused = client.post("/t/acme/billing/portal/", follow=True)
    assert "no billing account yet" in refused.content.decode()
    _checkout(client, world.tenant_a, "pro")
    response = client.post("/t/acme/billing/portal/")
    portal = stripe_fake.portal_sessions[response["Location"].rsplit("/", 1)[-1]]
    assert portal["customer"] == _subscription(world.tenant_a).stripe_customer_id
    assert portal["return_url"].endswith("/t/acme/billing/")


def test_stripe_being_down_gives_a_friendly_error_and_no_session(world, stripe_fake):
    stripe_fake.fail_next.extend([500])
    client = world.client_for(world.alice)
    response = _checkout(client, world.tenant_a, "starter")
    assert response["Location"] == "/t/acme/billing/"
    page = client.get("/t/acme/billing/").content.decode()
    assert "Stripe could not start the checkout" in page


def test_without_a_stripe_key_checkout_says_payments_are_not_set_up(world, settings):
    settings.STRIPE_SECRET_KEY = ""
    client = world.client_for(world.alice)
    _checkout(client, world.tenant_a, "starter")
    assert "Online payments are not set up" in client.get("/t/acme/billing/").content.decode()


def test_returning_from_checkout_shows_the_new_plan_without_waiting_for_the_webhook(world, stripe_fake):
    client = world.client_for(world.alice)
    session_id = _checkout(client, world.tenant_a, "pro")["Location"].rsplit("/", 1)[-1]
    stripe_fake.complete_checkout(session_id)
    page = client.get("/t/acme/billing/checkout/success/?session_id=cs_someone_else", follow=True)
    assert "Your plan: Pro" in page.content.decode()
    assert _subscription(world.tenant_a).status == "active"


def test_a_tenant_over_its_message_quota_is_let_through_again_after_upgrading(
    world, stripe_fake, post_event, eager_celery
):
    usage_record(tenant=world.tenant_a, messages=200)
    with pytest.raises(QuotaExceeded) as refused:
        quota_check(tenant=world.tenant_a, kind="messages")
    assert refused.value.code == "quota_exceeded"
    assert "200 messages this month" in refused.value.message and "Upgrade" in refused.value.message

    _pay(stripe_fake, _checkout(world.client_for(world.alice), world.tenant_a, "starter"), post_event)

    quota_check(tenant=world.tenant_a, kind="messages")
    assert _subscription(world.tenant_a).status == "trialing"
    assert _subscription(world.tenant_a).stripe_subscription_id in stripe_fake.subscriptions


def test_prices_map_to_the_seeded_plans(plans):
    assert plans["starter"].stripe_price_ids == [PRICE_STARTER]
    assert plans["pro"].stripe_price_ids == [PRICE_PRO]
    assert plans["free"].is_default and not plans["free"].is_purchasable


def test_the_billing_page_lists_the_tenants_stripe_invoices(world, stripe_fake, post_event, eager_celery):
    stripe_fake.price_amounts[PRICE_PRO] = 9900
    client = world.client_for(world.alice)
    _pay(stripe_fake, _checkout(client, world.tenant_a, "pro"), post_event)
    page = client.get("/t/acme/billing/").content.decode()
    assert "99.00 USD" in page and "paid" in page and "/invoice/in_fake" in page
    assert "Your plan: Pro" in page and "Manage billing" in page
    assert "99.00 USD" not in world.client_for(world.charlie).get("/t/bravo/billing/").content.decode()


def test_an_invoice_link_that_is_not_http_is_not_rendered(world, stripe_fake, post_event, eager_celery):
    client = world.client_for(world.alice)
    _pay(stripe_fake, _checkout(client, world.tenant_a, "pro"), post_event)
    customer = _subscription(world.tenant_a).stripe_customer_id
    for invoice in stripe_fake.invoices.values():
        if invoice["customer"] == customer:
            invoice["hosted_invoice_url"] = "javascript:alert(1)"
            invoice["number"] = "<img src=x onerror=alert(1)>"
    page = client.get("/t/acme/billing/").content.decode()
    assert "javascript:" not in page and "<img src=x" not in page


def test_the_billing_page_still_renders_when_stripe_is_down(world, stripe_fake):
    client = world.client_for(world.alice)
    _checkout(client, world.tenant_a, "pro")  # gives the tenant a Stripe customer
    stripe_fake.fail_next.append(503)
    page = client.get("/t/acme/billing/")
    assert page.status_code == 200
    assert "Invoices are unavailable right now" in page.content.decode()


def test_canceling_checkout_returns_to_billing_with_nothing_changed(world):
    client = world.client_for(world.alice)
    page = client.get("/t/acme/billing/?checkout=canceled").content.decode()
    assert "Checkout was canceled. Nothing was charged." in page
    assert _subscription(world.tenant_a).plan.is_default


def test_the_dunning_banner_costs_one_query_on_a_healthy_workspace_page(world, django_assert_num_queries):
    from django.template import Context, Template

    template = Template('{% include "billing/_banner.html" %}')
    with django_assert_num_queries(1):
        html = template.render(Context({"current_tenant": world.tenant_a, "current_membership": None}))
    assert "billing-banner" not in html


def test_a_tenant_that_had_a_subscription_gets_no_second_trial(world, stripe_fake, post_event, eager_celery):
    client = world.client_for(world.alice)
    _pay(stripe_fake, _checkout(client, world.tenant_a, "starter"), post_event)
    stripe_fake.cancel_subscription(_subscription(world.tenant_a).stripe_subscription_id)
    post_event(stripe_fake.events[-1])
    assert _subscription(world.tenant_a).status == "canceled"
    again = _checkout(client, world.tenant_a, "starter")
    session = stripe_fake.sessions[again["Location"].rsplit("/", 1)[-1]]
    assert "trial_period_days" not in session["subscription_data"]
