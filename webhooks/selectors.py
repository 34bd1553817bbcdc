"""Reads for outbound webhooks. Tenant scope required unless said otherwise."""

from __future__ import annotations

from django.db.models import QuerySet

from .models import DeliveryAttempt, Endpoint


def endpoint_list() -> QuerySet[Endpoint]:
    return Endpoint.objects.order_by("created")


def subscribed_events() -> frozenset[str]:
    """The events at least one enabled endpoint of the tenant wants, in one query. The answer
    pipeline keeps this in its turn configuration, so a turn of a tenant without endpoints
    emits nothing and queries nothing for webhooks."""
    found: set[str] = set()
    for events in Endpoint.objects.filter(enabled=True).values_list("events", flat=True):
        found.update(events)
    return frozenset(found)


def attempt_log(*, endpoint: Endpoint, limit: int = 50) -> list[DeliveryAttempt]:
    """The endpoint's latest attempts, newest first, each with its delivery (one query)."""
    return list(
        DeliveryAttempt.objects.filter(delivery__endpoint=endpoint)
        .select_related("delivery")
        .order_by("-created", "-id")[:limit]
    )


def pending_count(*, endpoint: Endpoint) -> int:
    return endpoint.deliveries.filter(status="pending").count()
