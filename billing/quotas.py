"""The quota interface every app calls before it spends a limited resource.

`quota_check(tenant=..., kind=..., amount=...)` raises QuotaExceeded (code
`quota_exceeded`) with a sentence naming the limit and how to raise it.
"""

from __future__ import annotations

from django.conf import settings

from chatbot_saas.errors import AppError
from tenants.context import tenant_context
from tenants.models import Tenant

from .models import Plan, Subscription, UsageCounter
from .services import current_period, plan_default, usage_warn_owners
from .usage_sources import usage_source

LIMIT_FIELDS = {
    "messages": ("max_messages_per_month", "messages this month"),
    "bots": ("max_bots", "bots"),
    "documents": ("max_documents", "documents"),
    "storage_bytes": ("max_storage_bytes", "bytes of knowledge storage"),
    "members": ("max_members", "team members"),
}


# Kinds billing counts itself: the usage counter, and the members table (tenants is below billing).
_OWN_KINDS = ("messages", "members")


def countable_kinds() -> list[str]:
    """The kinds that can be counted now: billing's own, and those whose app registered a counter."""
    return [kind for kind in LIMIT_FIELDS if kind in _OWN_KINDS or usage_source(kind) is not None]


class QuotaExceeded(AppError):
    code = "quota_exceeded"
    status = 402


def effective_plan(*, tenant: Tenant) -> Plan:
    """The plan whose limits apply now. Lapsed subscriptions fall back to the free plan."""
    with tenant_context(tenant):
        subscription = Subscription.objects.select_related("plan", "comp_plan").first()
    return plan_of(subscription)


def plan_of(subscription: Subscription | None) -> Plan:
    """effective_plan for a subscription read already (with its plan), or None for none."""
    if subscription is None:
        return plan_default()
    if subscription.comp_active:
        return subscription.comp_plan  # type: ignore[return-value]  # comp_active: not None
    if subscription.status in (Subscription.Status.ACTIVE, Subscription.Status.TRIALING):
        return subscription.plan
    if subscription.status == Subscription.Status.PAST_DUE:
        from .dunning import in_grace_period

        return subscription.plan if in_grace_period(subscription) else plan_default()
    return plan_default()


def current_usage(*, tenant: Tenant, kind: str) -> int:
    with tenant_context(tenant):
        if kind == "messages":
            # One counter per tenant and period (one_counter_per_period): no ordering, no model.
            counter = UsageCounter.objects.filter(period=current_period()).values_list("messages", flat=True)
            return next(iter(counter), 0)
        if kind == "members":
            from tenants.models import Invitation, Membership

            pending = sum(1 for i in Invitation.objects.filter(accepted=None, revoked=None) if i.is_pending)
            return Membership.objects.count() + pending
        count = usage_source(kind)
        if count is not None:
            return count(tenant=tenant)
    raise ValueError(f"Unknown quota kind {kind!r}")


def quota_check(
    *, tenant: Tenant, kind: str, amount: int = 1, plan: Plan | None = None, used: int | None = None
) -> None:
    """Raise QuotaExceeded if using `amount` more of `kind` would pass the plan's limit.

    Reads only, except once per period per kind: the first check that reaches
    BILLING_WARN_PERCENT of a limit emails the owners (see usage_warn_owners). Messages on a
    plan that allows overage are never refused; the excess is reported to Stripe instead.
    `plan` saves the look-up for a caller that read effective_plan(tenant=tenant) already, and
    `used` for one that read current_usage(tenant=tenant, kind=kind).
    """
    if kind not in LIMIT_FIELDS:
        raise ValueError(f"Unknown quota kind {kind!r}")
    field, label = LIMIT_FIELDS[kind]
    plan = plan or effective_plan(tenant=tenant)
    limit = getattr(plan, field)
    if limit is None:
        return
    if used is None:
        used = current_usage(tenant=tenant, kind=kind)
    if used + amount > limit and not (kind == "messages" and plan.allows_overage):
        raise QuotaExceeded(
            f"Your {plan.name} plan allows {limit} {label} and you have used {used}. "
            f"Upgrade your plan on the Billing page to raise the limit.",
            limit=kind,
            used=used,
            allowed=limit,
        )
    if limit and (used + amount) * 100 >= limit * settings.BILLING_WARN_PERCENT:
        usage_warn_owners(tenant=tenant, plan=plan, kind=kind, label=label, used=used + amount, limit=limit)


FEATURES = {"api_access": "API access", "webhooks": "webhooks", "custom_branding": "custom branding"}


class PlanFeatureRequired(AppError):
    code = "plan_feature_required"
    status = 402


def plan_cheapest_with(*, feature: str) -> Plan | None:
    """The cheapest public plan that includes `feature` (the one an upgrade message names)."""
    return Plan.objects.filter(is_public=True, **{feature: True}).order_by("price_monthly_cents", "sort_order").first()


def feature_enabled(*, tenant: Tenant, feature: str, plan: Plan | None = None) -> bool:
    """Whether the tenant's effective plan includes `feature` (see FEATURES). Reads only."""
    if feature not in FEATURES:
        raise ValueError(f"Unknown plan feature {feature!r}")
    plan = plan or effective_plan(tenant=tenant)
    return bool(getattr(plan, feature))


def feature_check(*, tenant: Tenant, feature: str, plan: Plan | None = None) -> None:
    """Raise PlanFeatureRequired (402) unless the tenant's effective plan has `feature`.

    The message names the cheapest public plan that has it. `plan` saves the look-up for a
    caller that read effective_plan(tenant=tenant) already.
    """
    plan = plan or effective_plan(tenant=tenant)
    if feature_enabled(tenant=tenant, feature=feature, plan=plan):
        return
    upgrade = plan_cheapest_with(feature=feature)
    advice = f"Upgrade to {upgrade.name} on the Billing page to use it." if upgrade else "Contact us to enable it."
    raise PlanFeatureRequired(
        f"Your {plan.name} plan does not include {FEATURES[feature]}. {advice}",
        feature=feature,
        plan_required=upgrade.slug if upgrade else None,
    )


def model_check(*, tenant: Tenant, model: str) -> None:
    """Raise PlanFeatureRequired unless the plan allows the LLM `model` (an empty list allows all)."""
    plan = effective_plan(tenant=tenant)
    if plan.allowed_models and model not in plan.allowed_models:
        raise PlanFeatureRequired(
            f"Your {plan.name} plan does not include the model {model[:100]}. "
            f"It allows: {', '.join(plan.allowed_models)}. Upgrade on the Billing page for more models.",
            feature="model",
        )
