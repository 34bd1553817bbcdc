from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from billing.services import plans_seed


class Command(BaseCommand):
    help = "Create the missing Free/Starter/Pro plans and fill empty Stripe price ids from STRIPE_PRICE_*."

    def handle(self, *args: Any, **options: Any) -> None:
        for plan in plans_seed():
            prices = ", ".join(plan.stripe_price_ids) or "no Stripe price"
            self.stdout.write(f"{plan.slug}: {plan.name} ({prices})")
