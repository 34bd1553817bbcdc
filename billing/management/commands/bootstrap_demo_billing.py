"""Give the local demo workspace the Pro plan, comped (no Stripe), so `make run` shows every
plan feature: the API, custom branding, webhooks. Idempotent; run by `bootstrap_demo`."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from billing.services import subscription_comp
from tenants.selectors import tenant_by_slug

DEMO_PLAN = "pro"


class Command(BaseCommand):
    help = "Put the demo tenant on the Pro plan without Stripe (local demo only)."

    def handle(self, *args: object, **opts: object) -> None:
        tenant = tenant_by_slug(slug=settings.DEMO_TENANT_SLUG)
        if tenant is None:
            self.stderr.write(f"No demo tenant '{settings.DEMO_TENANT_SLUG}'; run bootstrap_demo first.")
            return
        subscription = subscription_comp(tenant=tenant, plan_slug=DEMO_PLAN)
        self.stdout.write(f"Demo tenant '{tenant.slug}' is on the {subscription.plan.name} plan (comped locally).")
