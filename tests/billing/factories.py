"""Billing test factories. Plan and StripeEvent are not tenant-owned; Subscription and
UsageCounter (tenant-owned) are registered in tests/factories.py."""

from __future__ import annotations

import factory

from billing.models import Plan


class PlanFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Plan
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Plan {n}")
    slug = factory.Sequence(lambda n: f"plan-{n}")
    price_monthly_cents = 1900
    stripe_price_ids = factory.LazyAttribute(lambda o: [f"price_{o.slug}"])
