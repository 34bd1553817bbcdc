"""The public plan set every fresh database starts with.

Used by the 0003 data migration and by `manage.py billing_seed_plans`. Seeding never overwrites
what an operator edited in admin: it creates missing plans and only fills in Stripe price ids
that are still empty.
"""

from __future__ import annotations

from typing import Any

MB = 1024 * 1024

PLAN_SEED: list[dict[str, Any]] = [
    {
        "slug": "free",
        "name": "Free",
        "is_default": True,
        "price_monthly_cents": 0,
        "sort_order": 0,
        "max_bots": 1,
        "max_documents": 20,
        "max_storage_bytes": 50 * MB,
        "max_messages_per_month": 200,
        "max_members": 3,
    },
    {
        "slug": "starter",
        "name": "Starter",
        "price_monthly_cents": 2900,
        "trial_days": 14,
        "sort_order": 10,
        "max_bots": 3,
        "max_documents": 200,
        "max_storage_bytes": 500 * MB,
        "max_messages_per_month": 2_000,
        "max_members": 5,
        "api_access": True,
    },
    {
        "slug": "pro",
        "name": "Pro",
        "price_monthly_cents": 9900,
        "sort_order": 20,
        "max_bots": 10,
        "max_documents": 2_000,
        "max_storage_bytes": 5 * 1024 * MB,
        "max_messages_per_month": 20_000,
        "max_members": 20,
        "custom_branding": True,
        "api_access": True,
        "webhooks": True,
        "allows_overage": True,
    },
]

# Which setting holds each plan's Stripe price id.
PRICE_SETTINGS = {"starter": "STRIPE_PRICE_STARTER", "pro": "STRIPE_PRICE_PRO"}


def seed_plans(plan_model: Any, price_ids: dict[str, str]) -> list[Any]:
    """Create the missing seed plans and fill empty price ids. Idempotent.

    `plan_model` is the real or the historical (migration) Plan model.
    """
    plans = []
    has_default = plan_model.objects.filter(is_default=True).exists()
    for spec in PLAN_SEED:
        defaults = {k: v for k, v in spec.items() if k != "slug"}
        if spec.get("is_default") and has_default:
            defaults["is_default"] = False  # an operator already chose another default plan
        price = price_ids.get(spec["slug"], "")
        if price:
            defaults["stripe_price_ids"] = [price]
        plan, created = plan_model.objects.get_or_create(slug=spec["slug"], defaults=defaults)
        if not created and price and not plan.stripe_price_ids:
            plan.stripe_price_ids = [price]
            plan.save(update_fields=["stripe_price_ids"])
        plans.append(plan)
    return plans
