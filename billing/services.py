"""Writes for plans, subscriptions and usage.

Stripe is the source of truth for paid subscriptions: every change we learn about (webhook,
return from Checkout, daily reconciliation) re-fetches the customer's subscriptions from the
Stripe API and copies them here, so the result never depends on the order events arrive in.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F, QuerySet
from django.db.models.expressions import RawSQL
from django.urls import reverse
from django.utils import timezone

from chatbot_saas.errors import AppError, NotFound
from tenants.context import tenant_context
from tenants.events import event_emit
from tenants.models import Membership, Role, Tenant

from .models import LIVE_STATUSES, Plan, Subscription, UsageCounter
from .stripe_api import stripe_client

_SLUG_RE = re.compile(r"[-a-zA-Z0-9_]{1,50}")
FREE_PLAN_DEFAULTS = {"name": "Free", "is_default": True, "price_monthly_cents": 0}

# When a customer has several Stripe subscriptions, the one that grants access wins, then the newest.
_STATUS_RANK = {"active": 3, "trialing": 3, "past_due": 2, "unpaid": 1, "incomplete": 1, "paused": 1}


class UnknownCustomer(AppError):
    code = "unknown_customer"
    status = 404


class UnknownPrice(AppError):
    code = "unknown_price"
    status = 409


# --- plans ---------------------------------------------------------------------------------


def plan_default() -> Plan:
    """The default (free) plan; created on first use so a fresh database always has one."""
    plan = Plan.objects.filter(is_default=True).order_by("pk").first()
    if plan is None:
        plan, _ = Plan.objects.get_or_create(slug="free", defaults=FREE_PLAN_DEFAULTS)
    return plan


def plans_seed() -> list[Plan]:
    """Create the missing Free/Starter/Pro plans and fill empty Stripe price ids from settings.

    Idempotent; never overwrites what an operator edited.
    """
    from .plans import PRICE_SETTINGS, seed_plans

    return seed_plans(Plan, {slug: getattr(settings, name, "") for slug, name in PRICE_SETTINGS.items()})


# --- subscriptions -------------------------------------------------------------------------


def subscription_start_free(*, tenant: Tenant) -> Subscription:
    """Put a new tenant on the default plan. Idempotent."""
    with tenant_context(tenant):
        subscription, _ = Subscription.objects.get_or_create(
            tenant=tenant, defaults={"plan": plan_default(), "status": Subscription.Status.ACTIVE}
        )
    return subscription


def subscription_comp(*, tenant: Tenant, plan_slug: str) -> Subscription:
    """Put the tenant on `plan_slug` without Stripe: the local demo workspace, or an operator's gift.

    Idempotent. Seeds the public plans first when they are missing. Refuses (AppError
    `subscription_billed`) a workspace with a Stripe customer: Stripe decides that one's plan,
    and the next re-sync would undo the change anyway.
    """
    plans_seed()
    plan = Plan.objects.get(slug=plan_slug)
    with tenant_context(tenant), transaction.atomic():
        subscription, created = Subscription.objects.select_for_update().get_or_create(
            tenant=tenant, defaults={"plan": plan, "status": Subscription.Status.ACTIVE}
        )
        if created:
            return subscription
        if subscription.stripe_customer_id:
            raise AppError(
                "This workspace is billed through Stripe; change its plan there.", code="subscription_billed"
            )
        subscription.plan = plan
        subscription.status = Subscription.Status.ACTIVE
        subscription.updated = timezone.now()
        subscription.save(update_fields=["plan", "status", "updated"])
    return subscription


def subscription_comp_grant(*, tenant: Tenant, plan: Plan, until: datetime) -> Subscription:
    """Give the tenant `plan` without Stripe until `until`; after it, the subscription's own plan
    (Stripe's, or the free one) applies again by itself: `plan_of` reads the end date, no job runs.

    Works for Stripe customers too (the sync leaves the comp alone). Granting again replaces the
    comp. Raises AppError(comp_in_past) for an end date already gone. Locks the subscription row.
    """
    if until <= timezone.now():
        raise AppError("A comp needs an end date in the future.", code="comp_in_past")
    subscription_start_free(tenant=tenant)
    with tenant_context(tenant), transaction.atomic():
        subscription = Subscription.objects.select_for_update().get()
        subscription.comp_plan, subscription.comp_until = plan, until
        subscription.updated = timezone.now()
        subscription.save(update_fields=["comp_plan", "comp_until", "updated"])
    return subscription


def subscription_comp_end(*, tenant: Tenant) -> Plan | None:
    """End the tenant's comp now; returns the comped plan, or None when there was none (a no-op).
    The subscription's own plan applies again. Locks the subscription row."""
    with tenant_context(tenant), transaction.atomic():
        subscription = Subscription.objects.select_for_update().first()
        if subscription is None or subscription.comp_plan is None:
            return None
        plan = subscription.comp_plan
        subscription.comp_plan, subscription.comp_until = None, None
        subscription.updated = timezone.now()
        subscription.save(update_fields=["comp_plan", "comp_until", "updated"])
    return plan


def _customer_ensure(*, tenant: Tenant, user: AbstractBaseUser) -> str:
    """The tenant's Stripe customer id, created once.

    Locks the tenant's subscription row, so two concurrent upgrades cannot create two
    customers; the idempotency key covers a crash between Stripe's answer and our commit.
    """
    with transaction.atomic(), tenant_context(tenant):
        subscription = Subscription.objects.select_for_update().get()
        if subscription.stripe_customer_id:
            return subscription.stripe_customer_id
        customer = stripe_client().v1.customers.create(
            params={
                "email": getattr(user, "email", "") or "",
                "name": tenant.name,
                "metadata": {"tenant_id": str(tenant.pk), "tenant_slug": tenant.slug},
            },
            options={"idempotency_key": f"customer-for-tenant-{tenant.pk}"},
        )
        subscription.stripe_customer_id = customer.id
        subscription.save(update_fields=["stripe_customer_id"])
        return customer.id


def checkout_session_create(*, tenant: Tenant, plan_slug: str, user: AbstractBaseUser) -> str:
    """Start a Stripe Checkout (subscription mode) for a public paid plan; return its URL.

    Refuses the plan the tenant already pays for, and any second paid subscription: switching
    between paid plans goes through the Customer Portal, so a customer never pays twice.
    """
    valid = bool(_SLUG_RE.fullmatch(plan_slug))
    plan = Plan.objects.filter(slug=plan_slug, is_public=True).first() if valid else None
    if plan is None:
        raise NotFound("There is no such plan. Pick one of the plans on the Billing page.", code="plan_not_found")
    subscription = subscription_start_free(tenant=tenant)  # every tenant has one; this never adds a second
    if subscription.plan_id == plan.pk and subscription.status in LIVE_STATUSES:
        raise AppError(f"You are already on the {plan.name} plan.", code="already_on_plan", status=409)
    if not plan.is_purchasable:
        raise AppError(
            f"The {plan.name} plan cannot be bought online. To move to it, cancel your subscription with Manage billing.",
            code="plan_not_purchasable",
            status=409,
        )
    if subscription.is_live:
        raise AppError(
            f"You already pay for the {subscription.plan.name} plan. Use Manage billing to switch plans.",
            code="use_billing_portal",
            status=409,
        )
    customer_id = _customer_ensure(tenant=tenant, user=user)
    billing_url = settings.SITE_URL + reverse("billing_page", args=[tenant.slug])
    params: dict[str, Any] = {
        "mode": "subscription",
        "customer": customer_id,
        "client_reference_id": str(tenant.pk),
        "line_items": [{"price": plan.checkout_price_id, "quantity": 1}],
        "success_url": settings.SITE_URL + reverse("billing_checkout_success", args=[tenant.slug]),
        "cancel_url": billing_url + "?checkout=canceled",
        "metadata": {"tenant_id": str(tenant.pk), "plan": plan.slug},
        "subscription_data": {"metadata": {"tenant_id": str(tenant.pk), "plan": plan.slug}},
    }
    if plan.trial_days and not subscription.stripe_subscription_id:  # one trial per tenant, ever
        params["subscription_data"]["trial_period_days"] = plan.trial_days
    session = stripe_client().v1.checkout.sessions.create(params=params)
    return session.url


def portal_session_create(*, tenant: Tenant) -> str:
    """A Stripe Customer Portal session (card, plan switch, cancellation); return its URL."""
    with tenant_context(tenant):
        subscription = Subscription.objects.first()
    if subscription is None or not subscription.stripe_customer_id:
        raise AppError(
            "There is no billing account yet. Pick a paid plan first.", code="no_billing_account", status=409
        )
    session = stripe_client().v1.billing_portal.sessions.create(
        params={
            "customer": subscription.stripe_customer_id,
            "return_url": settings.SITE_URL + reverse("billing_page", args=[tenant.slug]),
        }
    )
    return session.url


def _timestamp(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), tz=UTC) if value else None


def _canonical(remote: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not remote:
        return None
    return max(remote, key=lambda s: (_STATUS_RANK.get(s.get("status", ""), 0), s.get("created") or 0))


def _apply_remote(subscription: Subscription, remote: dict[str, Any] | None) -> None:
    now = timezone.now()
    if remote is None:  # the customer has no subscription at all: back to the free plan
        subscription.plan = plan_default()
        subscription.status = Subscription.Status.ACTIVE
        subscription.stripe_subscription_id = ""
        subscription.current_period_start = subscription.current_period_end = subscription.trial_end = None
        subscription.cancel_at_period_end = False
        subscription.past_due_since = None
        return
    items = (remote.get("items") or {}).get("data") or [{}]
    item = items[0]
    price_id = (item.get("price") or {}).get("id", "")
    plan = Plan.objects.filter(stripe_price_ids__contains=[price_id]).first() if price_id else None
    if plan is None:
        raise UnknownPrice(
            f"No plan sells the Stripe price {price_id!r}. Add it to a plan's Stripe price ids in admin, then replay."
        )
    status = remote.get("status", "")
    if status not in Subscription.Status.values:
        raise AppError(f"Stripe returned an unknown subscription status {status!r}.", code="unknown_status")
    subscription.plan = plan
    subscription.status = status
    subscription.stripe_subscription_id = remote["id"]
    # Since API version 2025-03-31 the period lives on the subscription item.
    subscription.current_period_start = _timestamp(
        item.get("current_period_start") or remote.get("current_period_start")
    )
    subscription.current_period_end = _timestamp(item.get("current_period_end") or remote.get("current_period_end"))
    subscription.cancel_at_period_end = bool(remote.get("cancel_at_period_end"))
    subscription.trial_end = _timestamp(remote.get("trial_end"))
    if status == Subscription.Status.PAST_DUE:
        subscription.past_due_since = subscription.past_due_since or now
    else:
        subscription.past_due_since = None


def subscription_sync_customer(*, customer_id: str) -> Subscription:
    """Make our subscription for a Stripe customer match what the Stripe API holds now.

    Order-independent by construction: it never reads the event that triggered it, only the
    customer's subscriptions as Stripe lists them. The tenant's row is locked while Stripe is
    asked, so concurrent syncs run one after the other and the last one sees the newest state.
    Raises UnknownCustomer when no tenant has this customer id. Needs no tenant context.
    """
    with transaction.atomic():
        subscription = (
            Subscription.objects.unscoped()
            .select_for_update()
            .select_related("tenant")
            .filter(stripe_customer_id=customer_id)
            .first()
        )
        if subscription is None or not customer_id:
            raise UnknownCustomer(f"No tenant has the Stripe customer {customer_id!r}.")
        remote = stripe_client().v1.subscriptions.list(params={"customer": customer_id, "status": "all", "limit": 100})
        _apply_remote(subscription, _canonical([s.to_dict() for s in remote.data]))
        subscription.synced_at = subscription.updated = timezone.now()
        with tenant_context(subscription.tenant):
            subscription.save()
    return subscription


def subscription_sync_tenant(*, tenant: Tenant) -> Subscription | None:
    """Re-sync one tenant from Stripe; None when it never had a Stripe customer."""
    with tenant_context(tenant):
        subscription = Subscription.objects.first()
    if subscription is None or not subscription.stripe_customer_id:
        return None
    return subscription_sync_customer(customer_id=subscription.stripe_customer_id)


# --- emails --------------------------------------------------------------------------------


def _owner_emails(tenant: Tenant) -> list[str]:
    with tenant_context(tenant):
        owners = list(Membership.objects.filter(role=Role.OWNER).select_related("user"))
    return sorted({m.user.email for m in owners if m.user.email})


def _email_owners_on_commit(*, tenant: Tenant, subject: str, message: str) -> None:
    recipients = _owner_emails(tenant)
    if recipients:
        transaction.on_commit(
            lambda: send_mail(subject=subject, message=message, from_email=None, recipient_list=recipients)
        )


def dunning_notify(*, subscription: Subscription) -> None:
    """Tell the owners a payment failed and how long the plan lasts. Call once per failed invoice."""
    tenant = subscription.tenant
    link = settings.SITE_URL + reverse("billing_page", args=[tenant.slug])
    _email_owners_on_commit(
        tenant=tenant,
        subject=f"Payment failed for {tenant.name}",
        message=(
            f"We could not charge your card for the {subscription.plan.name} plan.\n\n"
            f"Update your card with Manage billing within {settings.BILLING_GRACE_DAYS} days: {link}\n"
            "After that, the workspace falls back to the Free plan's limits. No data is deleted."
        ),
    )


# --- usage ---------------------------------------------------------------------------------


def current_period(now: date | None = None) -> date:
    today = now or timezone.now().date()
    return today.replace(day=1)


def usage_record(
    *,
    tenant: Tenant,
    messages: int = 0,
    tokens_in: int = 0,
    tokens_out: int = 0,
    cost: Decimal | float = 0,
    documents: int = 0,
    storage_bytes: int = 0,
) -> None:
    """Add to this period's counter with one atomic UPDATE (no read-modify-write race).

    One statement in the common case; the period's row is created on its first use. Negative
    amounts (a deleted document) are allowed and never take a counter below zero.
    """
    with tenant_context(tenant):
        update = usage_update(
            messages=messages,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost=cost,
            documents=documents,
            storage_bytes=storage_bytes,
        )
        if update is None:
            return
        counters, values = update
        # No transaction of our own: in autocommit the common case is a single round trip.
        if counters.update(**values):
            return
        UsageCounter.objects.get_or_create(tenant=tenant, period=current_period())  # the period's first use
        counters.update(**values)


def usage_update(
    *,
    messages: int = 0,
    tokens_in: int = 0,
    tokens_out: int = 0,
    cost: Decimal | float = 0,
    documents: int = 0,
    storage_bytes: int = 0,
) -> tuple[QuerySet[UsageCounter], dict[str, Any]] | None:
    """The UPDATE usage_record runs, as (this period's counter, through the tenant scope; the
    increments). None when there is nothing to add. Tenant scope required. Updates no row in the
    period's first use."""
    changes = {
        "messages": messages,
        "tokens_in": tokens_in,
        "tokens_out": tokens_out,
        "cost": Decimal(str(cost)),
        "documents": documents,
        "storage_bytes": storage_bytes,
    }
    values = {field: _add_clamped(field, amount) for field, amount in changes.items() if amount}
    if not values:
        return None
    return UsageCounter.objects.filter(period=current_period()), values


def _add_clamped(field: str, amount: int | Decimal) -> Any:
    if amount >= 0:
        return F(field) + amount
    from django.db.models.functions import Greatest

    return Greatest(F(field) + amount, 0)


def usage_warn_owners(*, tenant: Tenant, plan: Plan, kind: str, label: str, used: int, limit: int) -> bool:
    """Email the owners that `kind` reached BILLING_WARN_PERCENT of its limit. Once per period.

    The kind is added to the period's `warned_kinds` by one conditional UPDATE, so concurrent
    callers race on the row lock and exactly one of them sends. Returns whether it sent.
    """
    period = current_period()
    with tenant_context(tenant), transaction.atomic():
        unwarned = UsageCounter.objects.filter(period=period).exclude(warned_kinds__contains=[kind])
        mark = {"warned_kinds": RawSQL("warned_kinds || %s::jsonb", [json.dumps([kind])])}
        won = unwarned.update(**mark)
        if not won and not UsageCounter.objects.filter(period=period).exists():
            UsageCounter.objects.get_or_create(tenant=tenant, period=period)
            won = unwarned.update(**mark)
        if not won:
            return False
        link = settings.SITE_URL + reverse("billing_page", args=[tenant.slug])
        _email_owners_on_commit(
            tenant=tenant,
            subject=f"{tenant.name} has used {settings.BILLING_WARN_PERCENT}% of its {label}",
            message=(
                f"Your {plan.name} plan allows {limit} {label}, and {used} are used.\n\n"
                f"When the limit is reached, new ones are refused until next month or until you upgrade: {link}"
            ),
        )
        warning = {"kind": kind, "label": label, "used": used, "limit": limit, "plan": plan.slug, "period": str(period)}
        transaction.on_commit(lambda: event_emit(name="quota.warning", tenant_id=tenant.pk, payload=warning))
    return True


def usage_overage_report(*, tenant: Tenant, period: date | None = None) -> int:
    """Report messages over the plan's limit to Stripe as meter events; return how many.

    Only for plans with allows_overage. Each report carries an identifier derived from the
    running total, so a retry after a crash is deduplicated by Stripe, and the counter's
    `overage_reported` (updated under a row lock) keeps reports from overlapping.
    """
    from .quotas import effective_plan

    period = period or current_period()
    plan = effective_plan(tenant=tenant)
    limit = plan.max_messages_per_month
    if not plan.allows_overage or limit is None:
        return 0
    with tenant_context(tenant), transaction.atomic():
        counter = UsageCounter.objects.select_for_update().filter(period=period).first()
        subscription = Subscription.objects.first()
        if counter is None or subscription is None or not subscription.stripe_customer_id:
            return 0
        unreported = max(0, counter.messages - limit) - counter.overage_reported
        if unreported <= 0:
            return 0
        total = counter.overage_reported + unreported
        stripe_client().v1.billing.meter_events.create(
            params={
                "event_name": settings.STRIPE_METER_EVENT_NAME,
                "payload": {"stripe_customer_id": subscription.stripe_customer_id, "value": str(unreported)},
                "identifier": f"overage-{tenant.pk}-{period:%Y-%m}-{total}",
            }
        )
        counter.overage_reported = total
        counter.save(update_fields=["overage_reported"])
    return unreported
