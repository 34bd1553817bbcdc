"""The billing page (owners only), Checkout and portal redirects, and the Stripe webhook."""

from __future__ import annotations

import logging

import stripe
from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from chatbot_saas.errors import AppError
from chatbot_saas.public import public_route
from tenants.decorators import require_role
from tenants.models import Role

from . import selectors, services, webhooks
from .quotas import effective_plan
from .tasks import stripe_event_process_task

logger = logging.getLogger(__name__)


@require_role(Role.OWNER)
def billing_page(request: HttpRequest, tenant_slug: str) -> HttpResponse:
    subscription = selectors.subscription_for(tenant=request.tenant)
    plan = effective_plan(tenant=request.tenant)
    if request.GET.get("checkout") == "canceled":
        messages.info(request, "Checkout was canceled. Nothing was charged.")
    context = {
        "subscription": subscription,
        "plan": plan,
        "plans": selectors.plans_public(),
        "usage": selectors.usage_for(tenant=request.tenant, plan=plan),
        "invoices": selectors.invoices_recent(tenant=request.tenant),
    }
    return render(request, "billing/page.html", context)


def _fail(request: HttpRequest, tenant_slug: str, message: str) -> HttpResponse:
    messages.error(request, message)
    return redirect("billing_page", tenant_slug=tenant_slug)


@require_POST
@require_role(Role.OWNER)
def checkout_start(request: HttpRequest, tenant_slug: str) -> HttpResponse:
    plan_slug = request.POST.get("plan", "")[:50]
    try:
        url = services.checkout_session_create(tenant=request.tenant, plan_slug=plan_slug, user=request.user)
    except AppError as exc:
        return _fail(request, tenant_slug, exc.message)
    except stripe.StripeError as exc:
        logger.warning("checkout for %s failed: %s", request.tenant.slug, exc)
        return _fail(request, tenant_slug, "Stripe could not start the checkout. Try again in a minute.")
    return redirect(url)


@require_role(Role.OWNER)
def checkout_success(request: HttpRequest, tenant_slug: str) -> HttpResponse:
    # The session id in the query string is not trusted: the sync reads our own customer's
    # subscriptions from Stripe, so the plan shows at once even if the webhook is late.
    try:
        services.subscription_sync_tenant(tenant=request.tenant)
    except (AppError, stripe.StripeError) as exc:
        logger.warning("post-checkout sync for %s failed: %s", request.tenant.slug, exc)
    messages.success(request, "Thank you! Your plan is active as soon as Stripe confirms the payment.")
    return redirect("billing_page", tenant_slug=tenant_slug)


@require_POST
@require_role(Role.OWNER)
def portal_open(request: HttpRequest, tenant_slug: str) -> HttpResponse:
    try:
        url = services.portal_session_create(tenant=request.tenant)
    except AppError as exc:
        return _fail(request, tenant_slug, exc.message)
    except stripe.StripeError as exc:
        logger.warning("portal for %s failed: %s", request.tenant.slug, exc)
        return _fail(request, tenant_slug, "Stripe could not open the billing portal. Try again in a minute.")
    return redirect(url)


@csrf_exempt
@require_POST
@public_route(reason="Stripe calls it; every request is authenticated by its Stripe-Signature header")
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    try:
        event = webhooks.stripe_event_verify(payload=request.body, signature=request.headers.get("Stripe-Signature"))
    except AppError as exc:
        return JsonResponse(exc.as_dict(), status=exc.status)
    row, needs_processing = webhooks.stripe_event_store(event=event)
    if needs_processing:
        transaction.on_commit(lambda: stripe_event_process_task.delay(event_pk=row.pk))
    return JsonResponse({"received": True, "status": row.status})
