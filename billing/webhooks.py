"""Stripe webhooks: verify, store once, process once.

Stripe delivers an event at least once, in any order, and retries for up to three days. So the
view only verifies the signature over the raw body and stores the event (unique by event id);
a Celery task applies it under a row lock, and applying it means re-syncing the customer from
the Stripe API (see services.subscription_sync_customer), never trusting the event's snapshot.
"""

from __future__ import annotations

import json
from typing import Any

import stripe
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from chatbot_saas.errors import AppError

from .models import StripeEvent, Subscription
from .services import UnknownCustomer, dunning_notify, subscription_sync_customer

HANDLED_TYPES = frozenset(
    {
        "checkout.session.completed",
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "invoice.paid",
        "invoice.payment_failed",
    }
)
FINAL_STATUSES = (StripeEvent.Status.PROCESSED, StripeEvent.Status.IGNORED, StripeEvent.Status.UNMATCHED)


class WebhookRejected(AppError):
    code = "webhook_rejected"
    status = 400


def stripe_event_verify(*, payload: bytes, signature: str | None) -> dict[str, Any]:
    """Return the event in `payload` if one of STRIPE_WEBHOOK_SECRETS signed it recently.

    The signature is checked over the raw bytes (before any parsing) with the official SDK,
    against every configured secret, so a secret can be rolled without losing events.
    """
    if len(payload) > settings.STRIPE_WEBHOOK_MAX_BYTES:
        raise WebhookRejected("The payload is too large.", code="payload_too_large", status=413)
    secrets = settings.STRIPE_WEBHOOK_SECRETS
    if not secrets:
        raise WebhookRejected("Webhooks are not configured: STRIPE_WEBHOOK_SECRET is not set.", status=503)
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise WebhookRejected("The payload is not UTF-8.", code="bad_payload") from None
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(text, signature, secret, settings.STRIPE_WEBHOOK_TOLERANCE)
            break
        except stripe.SignatureVerificationError:
            continue
    else:
        raise WebhookRejected("The Stripe-Signature header is missing, wrong or too old.", code="bad_signature")
    try:
        event = json.loads(text)
    except ValueError:
        raise WebhookRejected("The payload is not JSON.", code="bad_payload") from None
    if (
        not isinstance(event, dict)
        or event.get("object") != "event"
        or not isinstance(event.get("id"), str)
        or not isinstance(event.get("type"), str)
        or not 0 < len(event["id"]) <= 255
        or not 0 < len(event["type"]) <= 100
    ):
        raise WebhookRejected("The payload is not a Stripe event.", code="bad_payload")
    return event


def _customer_of(event: dict[str, Any]) -> str:
    obj = (event.get("data") or {}).get("object") or {}
    customer = obj.get("customer") if isinstance(obj, dict) else None
    if isinstance(customer, dict):  # an expanded customer object
        customer = customer.get("id")
    return customer[:255] if isinstance(customer, str) else ""


def stripe_event_store(*, event: dict[str, Any]) -> tuple[StripeEvent, bool]:
    """Store a verified event once by its id; return (row, whether it still needs processing).

    Concurrent deliveries of one event race on the unique index and all get the same row.
    A redelivery of an event that is still pending or failed asks for processing again, which
    is safe because processing is idempotent.
    """
    row, _ = StripeEvent.objects.get_or_create(
        stripe_id=event["id"],
        defaults={
            "type": event["type"],
            "livemode": bool(event.get("livemode")),
            "payload": event,
            "customer_id": _customer_of(event),
        },
    )
    return row, row.status not in FINAL_STATUSES


def _finish(event: StripeEvent, status: str, error: str = "") -> StripeEvent:
    event.status = status
    event.error = error
    event.processed = timezone.now() if status != StripeEvent.Status.FAILED else None
    event.save(update_fields=["status", "error", "processed", "attempts", "tenant"])
    return event


def stripe_event_process(*, event_pk: int) -> StripeEvent:
    """Apply a stored event exactly once.

    Locks the event row for the whole processing, so concurrent tasks for one event queue up
    and all but the first find it final. Unknown types end `ignored`, unknown customers end
    `unmatched` (both final, visible in admin); a Stripe or data error ends `failed` with the
    error, to be retried or replayed. Needs no tenant context.
    """
    with transaction.atomic():
        event = StripeEvent.objects.select_for_update().get(pk=event_pk)
        if event.status in FINAL_STATUSES:
            return event
        event.attempts += 1
        if event.type not in HANDLED_TYPES:
            return _finish(event, StripeEvent.Status.IGNORED)
        try:
            with transaction.atomic():
                subscription = subscription_sync_customer(customer_id=event.customer_id)
                event.tenant = subscription.tenant
                if event.type == "invoice.payment_failed" and subscription.status == Subscription.Status.PAST_DUE:
                    dunning_notify(subscription=subscription)
        except UnknownCustomer as exc:
            return _finish(event, StripeEvent.Status.UNMATCHED, exc.message)
        except AppError as exc:
            return _finish(event, StripeEvent.Status.FAILED, f"{exc.code}: {exc.message}")
        except stripe.StripeError as exc:
            return _finish(event, StripeEvent.Status.FAILED, f"stripe: {exc.user_message or exc}")
        return _finish(event, StripeEvent.Status.PROCESSED)


def stripe_event_replay(*, event: StripeEvent) -> None:
    """Make an event pending again and queue it (operators' replay). Processing stays idempotent."""
    from .tasks import stripe_event_process_task

    StripeEvent.objects.filter(pk=event.pk).update(status=StripeEvent.Status.PENDING, error="", processed=None)
    transaction.on_commit(lambda: stripe_event_process_task.delay(event_pk=event.pk))
