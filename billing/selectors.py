"""Reads for the billing page, the banner and admin."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import stripe
from django.conf import settings
from django.db.models import QuerySet

from chatbot_saas.errors import AppError
from tenants.context import tenant_context
from tenants.models import Tenant

from .models import Plan, Subscription
from .quotas import LIMIT_FIELDS, countable_kinds, current_usage, effective_plan
from .stripe_api import stripe_client

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class UsageRow:
    kind: str
    label: str
    used: int
    limit: int | None

    @property
    def percent(self) -> int | None:
        if self.limit is None:
            return None
        if self.limit == 0:
            return 100
        return min(100, round(self.used * 100 / self.limit))


@dataclass(frozen=True)
class Banner:
    level: str
    message: str


def plans_public() -> QuerySet[Plan]:
    return Plan.objects.filter(is_public=True)


def subscription_for(*, tenant: Tenant) -> Subscription | None:
    with tenant_context(tenant):
        return Subscription.objects.select_related("plan").first()


def usage_for(*, tenant: Tenant, plan: Plan) -> list[UsageRow]:
    """Each limited resource with what is used and what the plan allows."""
    return [
        UsageRow(kind, label, current_usage(tenant=tenant, kind=kind), getattr(plan, field))
        for kind, (field, label) in LIMIT_FIELDS.items()
        if kind in countable_kinds()
    ]


@dataclass(frozen=True)
class InvoiceRow:
    number: str
    created: datetime | None
    amount: str
    status: str
    url: str


def invoices_recent(*, tenant: Tenant, limit: int = 5) -> list[InvoiceRow] | None:
    """The tenant's latest Stripe invoices; [] without a customer, None when Stripe fails.

    Asked with a short timeout and no retries: the billing page must render without Stripe.
    """
    subscription = subscription_for(tenant=tenant)
    if subscription is None or not subscription.stripe_customer_id:
        return []
    try:
        invoices = stripe_client(timeout=5, retries=0).v1.invoices.list(
            params={"customer": subscription.stripe_customer_id, "limit": limit}
        )
    except (stripe.StripeError, AppError) as exc:
        logger.warning("listing invoices for %s failed: %s", tenant.slug, exc)
        return None
    rows = []
    for invoice in invoices.data[:limit]:
        data = invoice.to_dict()
        cents = int(data.get("total") or data.get("amount_due") or 0)
        rows.append(
            InvoiceRow(
                number=str(data.get("number") or data.get("id", "")),
                created=datetime.fromtimestamp(int(data["created"]), tz=UTC) if data.get("created") else None,
                amount=f"{cents / 100:,.2f} {str(data.get('currency') or '').upper()}".strip(),
                status=str(data.get("status") or ""),
                url=_safe_url(data.get("hosted_invoice_url")),
            )
        )
    return rows


def _safe_url(value: object) -> str:
    # Rendered as a link: only http(s), never javascript: from a tampered API answer.
    return value if isinstance(value, str) and value.startswith(("https://", "http://")) else ""


def billing_banner(*, tenant: Tenant) -> Banner | None:
    """The dunning banner: a failed payment inside its grace period, or after it."""
    subscription = subscription_for(tenant=tenant)
    if subscription is None or subscription.status != Subscription.Status.PAST_DUE:
        return None
    if effective_plan(tenant=tenant).pk == subscription.plan_id:
        since = subscription.past_due_since
        ends = (since + timedelta(days=settings.BILLING_GRACE_DAYS)) if since else None
        when = f" by {ends:%Y-%m-%d}" if ends else ""
        return Banner(
            "warning",
            f"Your last payment failed. Update your card with Manage billing{when} to keep the "
            f"{subscription.plan.name} plan.",
        )
    return Banner(
        "error",
        f"Your payment is overdue, so the Free plan's limits apply now. Nothing was deleted: update your card "
        f"with Manage billing to get the {subscription.plan.name} plan back.",
    )
