from __future__ import annotations

from django.core.management import call_command

from tenants.models import Membership, Role, Tenant


def test_bootstrap_demo_creates_the_tenant_once_and_prints_credentials(db, settings, tmp_path, capsys):
    settings.VAR_DIR = tmp_path
    call_command("bootstrap_demo")
    first = capsys.readouterr().out
    call_command("bootstrap_demo")
    second = capsys.readouterr().out
    assert Tenant.objects.filter(slug="demo").count() == 1
    owner = Membership.objects.unscoped().get(tenant__slug="demo")
    assert owner.role == Role.OWNER and owner.user.email == "owner@demo.local"
    assert first == second and "owner@demo.local" in first
    password = first.strip().rsplit(" / ", 1)[1]
    assert owner.user.check_password(password)


def test_the_demo_tenant_gets_a_comped_plan_with_every_feature(db, settings, tmp_path):
    from billing.models import Subscription
    from billing.quotas import FEATURES, feature_check

    settings.VAR_DIR = tmp_path
    call_command("bootstrap_demo")
    call_command("bootstrap_demo")  # idempotent: still one subscription, still comped
    demo = Tenant.objects.get(slug="demo")
    subscription = Subscription.objects.unscoped().get(tenant=demo)
    assert subscription.plan.slug == "pro" and subscription.stripe_customer_id == ""
    assert all(getattr(subscription.plan, feature) for feature in FEATURES)
    for feature in FEATURES:
        feature_check(tenant=demo, feature=feature)  # the effective plan too: raises if one is missing
