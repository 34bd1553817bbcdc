"""The one place that builds a Stripe client. Settings are read per call, so a changed
STRIPE_API_BASE (the test fake, stripe-mock) or a rolled key takes effect without a restart."""

from __future__ import annotations

import stripe
from django.conf import settings

from chatbot_saas.errors import AppError


class BillingNotConfigured(AppError):
    code = "billing_not_configured"
    status = 503


def stripe_client(*, timeout: float | None = None, retries: int | None = None) -> stripe.StripeClient:
    """A client for the configured account and API base. `timeout` (seconds) bounds each
    request; the default is STRIPE_TIMEOUT_SECONDS (the SDK's own default is 80 s)."""
    if not settings.STRIPE_SECRET_KEY:
        raise BillingNotConfigured("Online payments are not set up on this server yet. Contact support to upgrade.")
    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY,
        base_addresses={"api": settings.STRIPE_API_BASE},
        max_network_retries=settings.STRIPE_MAX_NETWORK_RETRIES if retries is None else retries,
        http_client=stripe.new_default_http_client(timeout=timeout or settings.STRIPE_TIMEOUT_SECONDS),
    )
