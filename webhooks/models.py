"""Webhook endpoints a tenant registered, the deliveries of events to them and each attempt.

A delivery is one event for one endpoint; it is attempted up to WEBHOOK_MAX_ATTEMPTS times
(`attempts`), each attempt logged as a DeliveryAttempt. A manual redelivery is a new delivery of
the same event (same event id, so a receiver can drop duplicates).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from tenants.scoping import TenantScopedModel


class Endpoint(TenantScopedModel):
    url = models.URLField(max_length=500)
    description = models.CharField(max_length=200, blank=True)
    events = models.JSONField(default=list)  # names from catalog.EVENTS
    # Encrypted (bots.crypto): the signing needs the secret itself, so it cannot be hashed.
    secret_encrypted = models.TextField()
    secret_prefix = models.CharField(max_length=16)  # what the dashboard shows after creation
    # After a rotation the old secret signs too (a second v1=) until previous_secret_expires.
    previous_secret_encrypted = models.TextField(blank=True)
    previous_secret_expires = models.DateTimeField(null=True, blank=True)
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=200, blank=True)
    # Deliveries in a row that failed every attempt; WEBHOOK_DISABLE_AFTER_FAILURES disables it.
    consecutive_failures = models.PositiveIntegerField(default=0)
    created = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["created"]
        indexes = [models.Index(fields=["tenant", "enabled"], name="webhooks_endpoint_enabled")]

    def __str__(self) -> str:
        return self.url


class Delivery(TenantScopedModel):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Delivered"
        FAILED = "failed", "Failed"

    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="deliveries")
    event_id = models.CharField(max_length=40)
    event_type = models.CharField(max_length=40)
    payload = models.JSONField()  # the body's JSON (id, type, created, tenant, data)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    # When the next attempt is due; the beat sweep queues due pending deliveries.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [
            models.Index(
                fields=["next_attempt_at"], name="webhooks_delivery_due", condition=models.Q(status="pending")
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id} to endpoint {self.endpoint_id}"


class DeliveryAttempt(TenantScopedModel):
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    status_code = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    ok = models.BooleanField(default=False)
    error_code = models.CharField(max_length=40, blank=True)
    error = models.CharField(max_length=500, blank=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return f"attempt {self.number} of delivery {self.delivery_id}"
