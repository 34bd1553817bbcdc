"""An event delivered by the real Celery worker to a real receiver, which checks the signature
with the secret the dashboard showed once."""

from __future__ import annotations

import time

import pytest

from conversations.services import message_feedback_set
from tenants.context import tenant_context
from tests.conversations.factories import MessageFactory
from webhooks.models import Delivery, DeliveryAttempt

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _wait_for(predicate, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")


def test_the_worker_delivers_a_signed_event_and_logs_the_attempt(world, pro_a, hook, live_worker):
    client = world.client_for(world.alice)
    response = client.post(
        "/t/acme/settings/webhooks/", {"url": hook.url, "description": "CRM", "events": ["feedback.created"]}
    )
    assert response.status_code == 200
    secret = response.context["secret"]
    message = MessageFactory(tenant=pro_a)
    with tenant_context(pro_a):
        message_feedback_set(message=message, value="up")  # autocommit: emitted at once

    _wait_for(lambda: hook.received, "the worker to deliver the event")
    [received] = hook.received
    assert received.verified_with(secret)
    assert received.event["type"] == "feedback.created"
    assert received.event["data"]["message_id"] == message.pk
    delivery = _wait_for(
        lambda: Delivery.objects.unscoped().filter(status=Delivery.Status.SUCCEEDED).first(),
        "the worker to record the delivery",
    )
    attempt = DeliveryAttempt.objects.unscoped().get(delivery=delivery)
    assert attempt.status_code == 200 and attempt.number == 1 and attempt.latency_ms is not None
    log = client.get(f"/t/acme/settings/webhooks/{delivery.endpoint_id}/").content.decode()
    assert "feedback.created" in log and delivery.event_id in log
