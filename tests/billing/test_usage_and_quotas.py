"""Metering, quotas, the 80 % warning and overage reported to Stripe."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.core import mail
from django.db import connection

from billing.models import Subscription, UsageCounter
from billing.quotas import QuotaExceeded, quota_check
from billing.services import current_period, usage_overage_report, usage_record
from tenants.context import tenant_context
from tenants.services import invitation_create
from tests.billing.conftest import PRICE_PRO
from tests.factories import MembershipFactory, TenantFactory, UserFactory

pytestmark = pytest.mark.usefixtures("plans")


def _counter(tenant) -> UsageCounter:
    return UsageCounter.objects.unscoped().get(tenant=tenant, period=current_period())


def _make_pro(tenant, stripe_fake) -> str:
    customer = stripe_fake.handle("POST", "/v1/customers", {}, {"name": tenant.name})
    Subscription.objects.unscoped().filter(tenant=tenant).update(stripe_customer_id=customer["id"])
    stripe_fake.create_subscription(customer["id"], PRICE_PRO, emit=False)
    from billing.services import subscription_sync_customer

    subscription_sync_customer(customer_id=customer["id"])
    return customer["id"]


def test_usage_is_counted_per_tenant_per_period(world):
    usage_record(tenant=world.tenant_a, messages=1, tokens_in=120, tokens_out=80, cost=Decimal("0.0021"))
    usage_record(tenant=world.tenant_a, messages=1, tokens_in=10, tokens_out=5, cost=0.5, documents=2)
    usage_record(tenant=world.tenant_b, messages=7, storage_bytes=1000)
    a = _counter(world.tenant_a)
    assert (a.messages, a.tokens_in, a.tokens_out, a.cost, a.documents) == (2, 130, 85, Decimal("0.5021"), 2)
    assert (_counter(world.tenant_b).messages, _counter(world.tenant_b).storage_bytes) == (7, 1000)


def test_a_deleted_document_lowers_the_counters_but_never_below_zero(world):
    usage_record(tenant=world.tenant_a, documents=1, storage_bytes=500)
    usage_record(tenant=world.tenant_a, documents=-3, storage_bytes=-900)
    assert (_counter(world.tenant_a).documents, _counter(world.tenant_a).storage_bytes) == (0, 0)


@pytest.mark.django_db(transaction=True)
def test_concurrent_usage_records_lose_no_increment():
    tenant = TenantFactory(slug="busy")
    barrier = threading.Barrier(8)

    def record() -> None:
        try:
            barrier.wait()
            for _ in range(25):
                usage_record(tenant=tenant, messages=1, tokens_out=2)
        finally:
            connection.close()

    threads = [threading.Thread(target=record) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counter = _counter(tenant)
    assert (counter.messages, counter.tokens_out) == (200, 400)


def test_the_quota_error_names_the_limit_and_how_to_upgrade(world):
    usage_record(tenant=world.tenant_a, messages=200)
    with pytest.raises(QuotaExceeded) as refused:
        quota_check(tenant=world.tenant_a, kind="messages")
    error = refused.value.as_dict()["error"]
    assert error["code"] == "quota_exceeded"
    assert error["limit"] == "messages" and error["used"] == 200 and error["allowed"] == 200
    assert "Free plan allows 200 messages this month" in error["message"]
    assert "Upgrade your plan on the Billing page" in error["message"]
    quota_check(tenant=world.tenant_b, kind="messages")  # another tenant's usage is its own


@pytest.mark.parametrize("amount", [0, 1, 199])
def test_amounts_within_the_limit_pass(world, amount):
    quota_check(tenant=world.tenant_a, kind="messages", amount=amount)


def test_an_amount_past_the_limit_is_refused_in_one_go(world):
    with pytest.raises(QuotaExceeded):
        quota_check(tenant=world.tenant_a, kind="messages", amount=201)


@pytest.mark.parametrize("kind", ["", "Messages", "messages; drop table", "tokens"])
def test_an_unknown_quota_kind_is_a_programming_error(world, kind):
    with pytest.raises(ValueError):
        quota_check(tenant=world.tenant_a, kind=kind)


@pytest.fixture
def check(django_capture_on_commit_callbacks):
    """quota_check as a request runs it: warnings are emailed when its transaction commits."""

    def run(**kwargs) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            quota_check(**kwargs)

    return run


def test_owners_get_one_warning_email_per_period_at_80_percent(world, check):
    MembershipFactory(tenant=world.tenant_a, user=UserFactory(username="second-owner"), role="owner")
    mail.outbox.clear()
    usage_record(tenant=world.tenant_a, messages=158)
    check(tenant=world.tenant_a, kind="messages")  # 159 of 200: below 80 %
    assert mail.outbox == []
    usage_record(tenant=world.tenant_a, messages=1)
    for _ in range(5):
        check(tenant=world.tenant_a, kind="messages")  # 160 of 200: 80 %
    assert len(mail.outbox) == 1
    assert sorted(mail.outbox[0].to) == ["alice@example.com", "second-owner@example.com"]  # not bob
    assert "80% of its messages this month" in mail.outbox[0].subject
    assert "/t/acme/billing/" in mail.outbox[0].body
    assert _counter(world.tenant_a).warned_kinds == ["messages"]

    # Another limit warns separately (the first bot is 100 % of Free's one bot); a new period starts clean.
    check(tenant=world.tenant_a, kind="bots")
    assert mail.outbox[-1].subject == "Acme has used 80% of its bots" and len(mail.outbox) == 2
    UsageCounter.objects.unscoped().filter(tenant=world.tenant_a).update(period="2000-01-01")
    mail.outbox.clear()
    usage_record(tenant=world.tenant_a, messages=170)
    check(tenant=world.tenant_a, kind="messages")
    assert len(mail.outbox) == 1


def test_members_are_limited_by_the_plan_through_invitations(world):
    # acme has alice and bob; Free allows 3 members, so one invitation fits and the next does not.
    with tenant_context(world.tenant_a):
        invitation_create(tenant=world.tenant_a, email="third@example.com", role="member", invited_by=world.alice)
        with pytest.raises(QuotaExceeded) as refused:
            invitation_create(tenant=world.tenant_a, email="fourth@example.com", role="member", invited_by=world.alice)
    assert "3 team members" in refused.value.message


def test_a_plan_with_overage_lets_messages_through_and_reports_the_excess_to_stripe_once(world, stripe_fake):
    customer = _make_pro(world.tenant_a, stripe_fake)
    usage_record(tenant=world.tenant_a, messages=20_000)
    quota_check(tenant=world.tenant_a, kind="messages")  # at the limit, still let through
    usage_record(tenant=world.tenant_a, messages=25)
    assert usage_overage_report(tenant=world.tenant_a) == 25
    assert usage_overage_report(tenant=world.tenant_a) == 0
    usage_record(tenant=world.tenant_a, messages=5)
    assert usage_overage_report(tenant=world.tenant_a) == 5
    reported = [e for e in stripe_fake.meter_events.values() if e["payload"]["stripe_customer_id"] == customer]
    assert sorted(int(e["payload"]["value"]) for e in reported) == [5, 25]
    assert {e["event_name"] for e in reported} == {"chatbot_messages"}
    assert _counter(world.tenant_a).overage_reported == 30


def test_a_failed_overage_report_is_sent_again_with_the_same_identifier(world, stripe_fake):
    _make_pro(world.tenant_a, stripe_fake)
    usage_record(tenant=world.tenant_a, messages=20_010)
    stripe_fake.fail_next.append(500)
    import stripe

    with pytest.raises(stripe.StripeError):
        usage_overage_report(tenant=world.tenant_a)
    assert _counter(world.tenant_a).overage_reported == 0
    assert usage_overage_report(tenant=world.tenant_a) == 10
    assert f"overage-{world.tenant_a.pk}-{current_period():%Y-%m}-10" in stripe_fake.meter_events


def test_a_plan_without_overage_reports_nothing(world, stripe_fake):
    usage_record(tenant=world.tenant_a, messages=500)
    before = len(stripe_fake.meter_events)
    assert usage_overage_report(tenant=world.tenant_a) == 0
    assert len(stripe_fake.meter_events) == before


def test_plan_features_are_checked_against_the_effective_plan(world, plans, stripe_fake):
    from billing.quotas import PlanFeatureRequired, feature_check

    with pytest.raises(PlanFeatureRequired) as refused:
        feature_check(tenant=world.tenant_a, feature="api_access")
    assert refused.value.code == "plan_feature_required" and refused.value.status == 402
    assert "Free plan does not include API access. Upgrade to Starter" in str(refused.value)
    _make_pro(world.tenant_a, stripe_fake)
    for feature in ["api_access", "webhooks", "custom_branding"]:
        feature_check(tenant=world.tenant_a, feature=feature)
    with pytest.raises(PlanFeatureRequired) as refused:
        feature_check(tenant=world.tenant_b, feature="webhooks")
    assert "Upgrade to Pro" in str(refused.value) and refused.value.extra["plan_required"] == "pro"
    with pytest.raises(ValueError):
        feature_check(tenant=world.tenant_a, feature="is_default")


def test_a_plan_can_restrict_the_models_a_tenant_may_use(world, plans):
    from billing.quotas import PlanFeatureRequired, model_check

    model_check(tenant=world.tenant_a, model="any-model")  # an empty list allows every model
    plans["free"].allowed_models = ["gpt-4o-mini", "claude-haiku"]
    plans["free"].save()
    model_check(tenant=world.tenant_a, model="gpt-4o-mini")
    with pytest.raises(PlanFeatureRequired) as refused:
        model_check(tenant=world.tenant_a, model="gpt-5" + "x" * 1000)
    assert "It allows: gpt-4o-mini, claude-haiku" in refused.value.message
    assert len(refused.value.message) < 300


def test_the_hourly_overage_job_reports_only_for_plans_that_allow_overage(world, stripe_fake, eager_celery):
    from billing.tasks import overage_report_all

    _make_pro(world.tenant_a, stripe_fake)
    usage_record(tenant=world.tenant_a, messages=20_003)
    usage_record(tenant=world.tenant_b, messages=900)  # Free: refused past the limit, never billed
    assert overage_report_all.delay().get() == 1
    assert _counter(world.tenant_a).overage_reported == 3
    assert _counter(world.tenant_b).overage_reported == 0
