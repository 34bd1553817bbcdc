"""Writes for outbound webhooks: endpoints, their secrets, and deliveries with their attempts.

Guarantees:
- A webhook URL passes the egress guard (knowledge.egress) when it is saved and again at every
  attempt, so a host that later resolves to a private address is refused at send time.
- Deliveries are at least once: each is queued when its event commits, and the beat sweep
  (deliveries_queue_due) re-queues any pending one whose attempt is due or whose worker died.
  Receivers drop duplicates by the event id (X-Webhook-Id).
- An endpoint whose WEBHOOK_DISABLE_AFTER_FAILURES deliveries in a row failed every attempt is
  disabled, once, and its workspace's owners are emailed.
Webhooks are a plan feature ("webhooks"): creating, changing, testing and redelivering check it,
and events of a workspace whose plan lacks it are not delivered.
"""

from __future__ import annotations

import json
import secrets
import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from billing.quotas import feature_check, feature_enabled
from bots import crypto
from chatbot_saas.errors import AppError
from knowledge import egress
from tenants.context import tenant_context
from tenants.models import Membership, Role, Tenant

from . import signing
from .catalog import EVENTS, TEST_EVENT
from .models import Delivery, DeliveryAttempt, Endpoint

# How long a queued or running attempt owns its delivery before the sweep queues it again.
LEASE = timedelta(minutes=5)


class WebhookUrlRefused(AppError):
    code = "url_refused"


# --- endpoints -----------------------------------------------------------------------------


def endpoint_url_check(url: str) -> None:
    """Raise WebhookUrlRefused (code url_invalid, url_refused or url_unresolvable) unless the
    egress guard would send to `url` now."""
    try:
        egress.check_url(url)
    except egress.EgressRefused as exc:
        raise WebhookUrlRefused(f"{exc} Use a public http(s) address for your webhook.", code=exc.code) from exc


def _events_check(events: list[str]) -> list[str]:
    unknown = sorted(set(events) - EVENTS.keys())
    if unknown or not events:
        raise AppError(
            f"Choose at least one of the listed events{' (unknown: ' + ', '.join(unknown) + ')' if unknown else ''}.",
            code="events_invalid",
        )
    return [name for name in EVENTS if name in events]  # the catalog's order, no duplicates


def endpoint_create(
    *, tenant: Tenant, url: str, description: str, events: list[str], created_by: Any = None
) -> tuple[Endpoint, str]:
    """Register an endpoint; return it and its signing secret (shown once: only its prefix is
    shown again). Checks the plan feature and the URL. Tenant scope required."""
    feature_check(tenant=tenant, feature="webhooks")
    endpoint_url_check(url)
    secret = signing.secret_generate()
    endpoint = Endpoint.objects.create(
        tenant=tenant,
        url=url.strip(),
        description=description.strip(),
        events=_events_check(events),
        secret_encrypted=crypto.encrypt(secret),
        secret_prefix=secret[:12],
        created_by=created_by,
    )
    return endpoint, secret


def endpoint_update(*, endpoint: Endpoint, url: str, description: str, events: list[str]) -> Endpoint:
    feature_check(tenant=endpoint.tenant, feature="webhooks")
    endpoint_url_check(url)
    endpoint.url = url.strip()
    endpoint.description = description.strip()
    endpoint.events = _events_check(events)
    endpoint.save(update_fields=["url", "description", "events"])
    return endpoint


def endpoint_rotate_secret(*, endpoint: Endpoint) -> str:
    """Give the endpoint a new secret and return it (shown once). The current one keeps signing,
    as a second v1=, for WEBHOOK_PREVIOUS_SECRET_HOURS; a secret older than that is dropped."""
    feature_check(tenant=endpoint.tenant, feature="webhooks")
    secret = signing.secret_generate()
    endpoint.previous_secret_encrypted = endpoint.secret_encrypted
    endpoint.previous_secret_expires = timezone.now() + timedelta(hours=settings.WEBHOOK_PREVIOUS_SECRET_HOURS)
    endpoint.secret_encrypted = crypto.encrypt(secret)
    endpoint.secret_prefix = secret[:12]
    endpoint.save(
        update_fields=["previous_secret_encrypted", "previous_secret_expires", "secret_encrypted", "secret_prefix"]
    )
    return secret


def endpoint_enable(*, endpoint: Endpoint) -> Endpoint:
    """Turn an endpoint back on with a clean failure count (deliveries failed meanwhile stay failed)."""
    feature_check(tenant=endpoint.tenant, feature="webhooks")
    endpoint.enabled = True
    endpoint.disabled_reason = ""
    endpoint.consecutive_failures = 0
    endpoint.save(update_fields=["enabled", "disabled_reason", "consecutive_failures"])
    return endpoint


def endpoint_disable(*, endpoint: Endpoint, reason: str = "Disabled by a workspace admin.") -> Endpoint:
    endpoint.enabled = False
    endpoint.disabled_reason = reason[:200]
    endpoint.save(update_fields=["enabled", "disabled_reason"])
    return endpoint


def endpoint_delete(*, endpoint: Endpoint) -> None:
    endpoint.delete()


def endpoint_secrets(endpoint: Endpoint) -> list[str]:
    """The secrets that sign now: the current one, then the previous one until it expires."""
    current = crypto.decrypt(endpoint.secret_encrypted)
    if current is None:
        raise AppError(
            "This endpoint's secret can no longer be read (the encryption key changed). Rotate the secret.",
            code="webhook_secret_unreadable",
        )
    found = [current]
    if (
        endpoint.previous_secret_encrypted
        and endpoint.previous_secret_expires
        and endpoint.previous_secret_expires > timezone.now()
    ):
        previous = crypto.decrypt(endpoint.previous_secret_encrypted)
        if previous is not None:
            found.append(previous)
    return found


# --- deliveries ----------------------------------------------------------------------------


def _event(*, tenant: Tenant, name: str, data: dict[str, Any]) -> dict[str, Any]:
    # Through JSON once, so what is stored is exactly what is sent (dates and decimals as text).
    return {
        "id": "evt_" + secrets.token_hex(12),
        "type": name,
        "created": timezone.now().isoformat().replace("+00:00", "Z"),
        "tenant": tenant.slug,
        "data": json.loads(json.dumps(data, default=str)),
    }


def _queue(delivery: Delivery) -> None:
    from .tasks import delivery_attempt_task

    delivery_id, tenant_id = delivery.pk, delivery.tenant_id
    transaction.on_commit(lambda: delivery_attempt_task.delay(delivery_id=delivery_id, tenant_id=tenant_id))


def deliveries_create_for_event(sender: str, *, tenant_id: int, payload: dict[str, Any], **kwargs: Any) -> int:
    """The event_emitted receiver: one delivery per enabled endpoint of the tenant subscribed to
    the event, queued. Returns how many. Runs after the event's transaction committed, in
    whatever context emitted it, so it names the tenant itself: the first query is deliberately
    unscoped and filtered by `tenant_id` (one query when nobody listens)."""
    if sender not in EVENTS:
        return 0
    endpoints = list(Endpoint.objects.unscoped().filter(tenant_id=tenant_id, enabled=True, events__contains=[sender]))
    if not endpoints:
        return 0
    tenant = Tenant.objects.get(pk=tenant_id)
    if not tenant.is_active or not feature_enabled(tenant=tenant, feature="webhooks"):
        return 0
    event = _event(tenant=tenant, name=sender, data=payload)
    due = timezone.now() + LEASE
    with tenant_context(tenant), transaction.atomic():
        deliveries = Delivery.objects.bulk_create(
            [
                Delivery(
                    tenant=tenant,
                    endpoint=endpoint,
                    event_id=event["id"],
                    event_type=sender,
                    payload=event,
                    next_attempt_at=due,
                )
                for endpoint in endpoints
            ]
        )
        for delivery in deliveries:
            _queue(delivery)
    return len(deliveries)


def endpoint_send_test(*, endpoint: Endpoint) -> Delivery:
    """Queue a `webhook.test` event to the endpoint (also a disabled one: it checks a fix before
    re-enabling). One attempt, no retries, not counted towards disabling."""
    feature_check(tenant=endpoint.tenant, feature="webhooks")
    event = _event(
        tenant=endpoint.tenant,
        name=TEST_EVENT,
        data={"endpoint": endpoint.pk, "message": "A test event sent from the dashboard."},
    )
    with transaction.atomic():
        delivery = Delivery.objects.create(
            endpoint=endpoint,
            event_id=event["id"],
            event_type=TEST_EVENT,
            payload=event,
            next_attempt_at=timezone.now() + LEASE,
        )
        _queue(delivery)
    return delivery


def delivery_redeliver(*, delivery: Delivery) -> Delivery:
    """Send the delivery's event again, as a new delivery with fresh attempts (same event id)."""
    feature_check(tenant=delivery.tenant, feature="webhooks")
    with transaction.atomic():
        again = Delivery.objects.create(
            endpoint=delivery.endpoint,
            event_id=delivery.event_id,
            event_type=delivery.event_type,
            payload=delivery.payload,
            next_attempt_at=timezone.now() + LEASE,
        )
        _queue(again)
    return again


def _max_attempts(delivery: Delivery) -> int:
    return 1 if delivery.event_type == TEST_EVENT else settings.WEBHOOK_MAX_ATTEMPTS


def retry_delay(attempt: int) -> timedelta:
    """The wait after failed attempt `attempt` (1-based): base * 3**(attempt-1)."""
    return timedelta(seconds=settings.WEBHOOK_RETRY_BASE_SECONDS * 3 ** (attempt - 1))


def _claim(delivery_id: int) -> Delivery | None:
    with transaction.atomic():
        delivery = Delivery.objects.select_for_update().select_related("endpoint").filter(pk=delivery_id).first()
        if delivery is None or delivery.status != Delivery.Status.PENDING:
            return None
        delivery.next_attempt_at = timezone.now() + LEASE
        delivery.save(update_fields=["next_attempt_at"])
        return delivery


def _send(delivery: Delivery) -> tuple[bool, int | None, str, str]:
    """One POST through the egress guard: (ok, status code, error code, error sentence)."""
    endpoint = delivery.endpoint
    if not endpoint.enabled and delivery.event_type != TEST_EVENT:
        return False, None, "endpoint_disabled", "The endpoint is disabled; re-enable it, then redeliver."
    try:
        body = json.dumps(delivery.payload, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": signing.USER_AGENT,
            signing.EVENT_ID_HEADER: delivery.event_id,
            signing.EVENT_TYPE_HEADER: delivery.event_type,
            signing.SIGNATURE_HEADER: signing.signature_header(endpoint_secrets(endpoint), int(time.time()), body),
        }
        result = egress.post(endpoint.url, content=body, headers=headers, timeout=settings.WEBHOOK_TIMEOUT_SECONDS)
    except egress.EgressRefused as exc:
        return False, None, exc.code, str(exc)[:500]
    except AppError as exc:
        return False, None, exc.code, exc.message[:500]
    if 200 <= result.status < 300:
        return True, result.status, "", ""
    answer = result.body.decode("utf-8", "replace").strip()
    return False, result.status, "http_error", f"HTTP {result.status}{': ' + answer if answer else ''}"[:500]


def delivery_attempt(*, delivery_id: int) -> str:
    """Make the delivery's next attempt and log it; return its status afterwards. Tenant scope
    required. A delivery that is not pending (done, or claimed by a concurrent run) is left
    alone. The endpoint is sent to with no database lock held."""
    delivery = _claim(delivery_id)
    if delivery is None:
        return Delivery.objects.filter(pk=delivery_id).values_list("status", flat=True).first() or "missing"
    started = time.perf_counter()
    ok, status_code, error_code, error = _send(delivery)
    latency_ms = round((time.perf_counter() - started) * 1000)
    number = delivery.attempts + 1
    with transaction.atomic():
        delivery = Delivery.objects.select_for_update().select_related("endpoint").get(pk=delivery_id)
        DeliveryAttempt.objects.create(
            delivery=delivery,
            number=number,
            status_code=status_code,
            latency_ms=None if status_code is None and error_code != "fetch_timeout" else latency_ms,
            ok=ok,
            error_code=error_code,
            error=error,
        )
        delivery.attempts = number
        final = ok or error_code == "endpoint_disabled" or number >= _max_attempts(delivery)
        if ok:
            delivery.status = Delivery.Status.SUCCEEDED
        elif final:
            delivery.status = Delivery.Status.FAILED
        delivery.next_attempt_at = None if final else timezone.now() + retry_delay(number)
        delivery.save(update_fields=["attempts", "status", "next_attempt_at"])
        if delivery.event_type != TEST_EVENT and error_code != "endpoint_disabled":
            if ok:
                Endpoint.objects.filter(pk=delivery.endpoint_id, consecutive_failures__gt=0).update(
                    consecutive_failures=0
                )
            elif final:
                _endpoint_failed(delivery.endpoint)
    return delivery.status


def _endpoint_failed(endpoint: Endpoint) -> None:
    """Count a delivery that failed every attempt; disable the endpoint at the limit, once."""
    Endpoint.objects.filter(pk=endpoint.pk).update(consecutive_failures=F("consecutive_failures") + 1)
    endpoint = Endpoint.objects.select_for_update().get(pk=endpoint.pk)
    limit = settings.WEBHOOK_DISABLE_AFTER_FAILURES
    if not endpoint.enabled or endpoint.consecutive_failures < limit:
        return
    endpoint_disable(endpoint=endpoint, reason=f"Disabled after {limit} deliveries in a row failed every attempt.")
    _email_owners_disabled(endpoint)


def _email_owners_disabled(endpoint: Endpoint) -> None:
    tenant = endpoint.tenant
    owners = Membership.objects.filter(role=Role.OWNER).select_related("user")
    recipients = sorted({m.user.email for m in owners if m.user.email})
    if not recipients:
        return
    link = settings.SITE_URL + reverse("webhook_detail", args=[tenant.slug, endpoint.pk])
    subject = f"A webhook of {tenant.name} was disabled"
    message = (
        f"We disabled the webhook endpoint {endpoint.url} after "
        f"{settings.WEBHOOK_DISABLE_AFTER_FAILURES} deliveries in a row failed every attempt "
        "over about a day.\n\n"
        f"The delivery log shows the errors. Fix the endpoint, then re-enable it: {link}"
    )
    transaction.on_commit(
        lambda: send_mail(subject=subject, message=message, from_email=None, recipient_list=recipients)
    )


def deliveries_queue_due(*, limit: int = 500) -> int:
    """Beat sweep, across tenants (deliberately unscoped, as operator jobs are): queue every
    pending delivery whose next attempt is due, leasing it so the next sweep skips it."""
    now = timezone.now()
    due = list(
        Delivery.objects.unscoped()
        .filter(status=Delivery.Status.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("pk", "tenant_id")[:limit]
    )
    if not due:
        return 0
    from .tasks import delivery_attempt_task

    Delivery.objects.unscoped().filter(pk__in=[pk for pk, _ in due]).update(next_attempt_at=now + LEASE)
    for delivery_id, tenant_id in due:
        delivery_attempt_task.delay(delivery_id=delivery_id, tenant_id=tenant_id)
    return len(due)
