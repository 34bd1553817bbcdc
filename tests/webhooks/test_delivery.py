"""Deliveries against a real local receiver that checks the signature: the envelope, retries with
backoff, the egress guard at send time, disabling after persistent failure, redelivery and tests.
Celery runs eagerly here; test_delivery_live.py uses the real worker."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from conversations.services import message_feedback_set
from tenants.context import tenant_context
from tests.conversations.factories import MessageFactory
from tests.webhooks.factories import EndpointFactory
from tests.webhooks.receiver import receiver
from webhooks import services
from webhooks.models import Delivery, DeliveryAttempt, Endpoint

pytestmark = pytest.mark.usefixtures("eager_celery")


def _endpoint(tenant, url: str, events=("feedback.created",)) -> tuple[Endpoint, str]:
    with tenant_context(tenant):
        return services.endpoint_create(tenant=tenant, url=url, description="", events=list(events))


def _rate(tenant, capture) -> object:
    message = MessageFactory(tenant=tenant)
    with tenant_context(tenant), capture(execute=True):
        message_feedback_set(message=message, value="down", comment="Wrong opening hours")
    return message


def _attempts(endpoint: Endpoint) -> list[DeliveryAttempt]:
    return list(DeliveryAttempt.objects.unscoped().filter(delivery__endpoint=endpoint).order_by("id"))


def test_feedback_reaches_the_endpoint_signed_with_the_documented_envelope(
    world, pro_a, hook, django_capture_on_commit_callbacks
):
    endpoint, secret = _endpoint(pro_a, hook.url)
    message = _rate(pro_a, django_capture_on_commit_callbacks)
    [received] = hook.received
    assert received.verified_with(secret)
    assert not received.verified_with("whsec_someone-else")
    event = received.event
    assert set(event) == {"id", "type", "created", "tenant", "data"}
    assert event["type"] == "feedback.created" and event["tenant"] == "acme"
    assert event["data"] == {
        "conversation_id": message.conversation_id,
        "message_id": message.pk,
        "value": "down",
        "comment": "Wrong opening hours",
    }
    assert received.headers["x-webhook-id"] == event["id"]
    assert received.headers["x-webhook-event"] == "feedback.created"
    [attempt] = _attempts(endpoint)
    assert attempt.ok and attempt.status_code == 200 and attempt.latency_ms is not None
    assert attempt.delivery.status == Delivery.Status.SUCCEEDED


def test_an_event_the_endpoint_did_not_pick_is_not_sent(world, pro_a, hook, django_capture_on_commit_callbacks):
    _endpoint(pro_a, hook.url, events=["lead.created"])
    _rate(pro_a, django_capture_on_commit_callbacks)
    assert hook.received == []
    assert not Delivery.objects.unscoped().exists()


def test_a_workspace_that_left_pro_gets_no_deliveries(world, pro_a, hook, django_capture_on_commit_callbacks):
    from billing.services import subscription_comp

    _endpoint(pro_a, hook.url)
    subscription_comp(tenant=pro_a, plan_slug="free")
    _rate(pro_a, django_capture_on_commit_callbacks)
    assert hook.received == []


def test_a_failing_endpoint_is_retried_with_growing_waits_then_given_up(
    world, pro_a, loopback, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    with receiver(status=503) as failing:
        endpoint, _ = _endpoint(pro_a, failing.url)
        _rate(pro_a, django_capture_on_commit_callbacks)
        delivery = Delivery.objects.unscoped().get(endpoint=endpoint)
        assert delivery.status == Delivery.Status.PENDING and delivery.attempts == 1
        first_wait = delivery.next_attempt_at - timezone.now()
        assert timedelta(seconds=70) < first_wait <= timedelta(seconds=80)
        with tenant_context(pro_a):
            assert services.delivery_attempt(delivery_id=delivery.pk) == "pending"
            delivery.refresh_from_db()
            assert timedelta(seconds=230) < delivery.next_attempt_at - timezone.now() <= timedelta(seconds=240)
            assert services.delivery_attempt(delivery_id=delivery.pk) == "failed"
            assert services.delivery_attempt(delivery_id=delivery.pk) == "failed"  # final: left alone
        assert len(failing.received) == 3
    attempts = _attempts(endpoint)
    assert [(a.number, a.status_code, a.ok) for a in attempts] == [(1, 503, False), (2, 503, False), (3, 503, False)]
    assert attempts[0].error == "HTTP 503: receiver says no"
    endpoint.refresh_from_db()
    assert endpoint.consecutive_failures == 1 and endpoint.enabled


def test_the_default_schedule_spans_about_a_day(settings):
    waits = [services.retry_delay(n) for n in range(1, settings.WEBHOOK_MAX_ATTEMPTS)]
    assert settings.WEBHOOK_MAX_ATTEMPTS == 8
    assert all(later > earlier for earlier, later in zip(waits, waits[1:], strict=False))
    assert timedelta(hours=22) < sum(waits, timedelta()) < timedelta(hours=26)


def test_a_private_address_is_refused_at_send_time(world, pro_a, hook, settings, django_capture_on_commit_callbacks):
    # Saved while the address was allowed; by the time of sending it is not (as a DNS answer
    # that changes to a private address would be): nothing reaches it.
    endpoint, _ = _endpoint(pro_a, hook.url)
    settings.KNOWLEDGE_EGRESS_ALLOW_LOOPBACK = False
    _rate(pro_a, django_capture_on_commit_callbacks)
    assert hook.received == []
    [attempt] = _attempts(endpoint)
    assert attempt.error_code == "url_refused" and attempt.status_code is None
    assert "not a public internet address" in attempt.error


def test_a_private_address_stored_by_other_means_is_refused_at_send_time(
    world, pro_a, django_capture_on_commit_callbacks
):
    endpoint = EndpointFactory(tenant=pro_a, url="http://10.20.30.40/hook", events=["feedback.created"])
    _rate(pro_a, django_capture_on_commit_callbacks)
    [attempt] = _attempts(endpoint)
    assert attempt.error_code == "url_refused"


def test_persistent_failure_disables_the_endpoint_and_emails_the_owners(
    world, pro_a, loopback, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_MAX_ATTEMPTS = 1
    settings.WEBHOOK_DISABLE_AFTER_FAILURES = 2
    with receiver(status=500) as failing:
        endpoint, _ = _endpoint(pro_a, failing.url)
        _rate(pro_a, django_capture_on_commit_callbacks)
        endpoint.refresh_from_db()
        assert endpoint.enabled and endpoint.consecutive_failures == 1
        assert mail.outbox == []
        _rate(pro_a, django_capture_on_commit_callbacks)
        endpoint.refresh_from_db()
        assert not endpoint.enabled
        assert "2 deliveries in a row" in endpoint.disabled_reason
        [email] = mail.outbox
        assert email.to == ["alice@example.com"]  # the owner, not bob the member
        assert failing.url in email.body and f"/settings/webhooks/{endpoint.pk}/" in email.body
        _rate(pro_a, django_capture_on_commit_callbacks)  # a disabled endpoint gets nothing new
        assert len(failing.received) == 2

    client = world.client_for(world.alice)
    page = client.get(f"/t/acme/settings/webhooks/{endpoint.pk}/").content.decode()
    assert 'data-testid="disabled-badge"' in page and "Re-enable" in page
    listing = client.get("/t/acme/settings/webhooks/").content.decode()
    assert 'data-testid="disabled-badge"' in listing
    assert client.post(f"/t/acme/settings/webhooks/{endpoint.pk}/enable/").status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.enabled and endpoint.consecutive_failures == 0 and endpoint.disabled_reason == ""


def test_a_delivered_event_resets_the_failure_count(world, pro_a, hook, settings, django_capture_on_commit_callbacks):
    settings.WEBHOOK_MAX_ATTEMPTS = 1
    endpoint, _ = _endpoint(pro_a, hook.url)
    Endpoint.objects.unscoped().filter(pk=endpoint.pk).update(consecutive_failures=3)
    _rate(pro_a, django_capture_on_commit_callbacks)
    endpoint.refresh_from_db()
    assert endpoint.consecutive_failures == 0


def test_redelivery_sends_the_same_event_again_as_a_new_delivery(
    world, pro_a, loopback, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_MAX_ATTEMPTS = 1
    with receiver(status=500) as flaky:
        endpoint, secret = _endpoint(pro_a, flaky.url)
        _rate(pro_a, django_capture_on_commit_callbacks)
        failed = Delivery.objects.unscoped().get(endpoint=endpoint)
        assert failed.status == Delivery.Status.FAILED
        flaky.status = 200
        client = world.client_for(world.alice)
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(f"/t/acme/settings/webhooks/deliveries/{failed.pk}/redeliver/")
        assert response.status_code == 302
    first, again = flaky.received
    assert first.event["id"] == again.event["id"] and again.verified_with(secret)
    redelivered = Delivery.objects.unscoped().exclude(pk=failed.pk).get(endpoint=endpoint)
    assert redelivered.status == Delivery.Status.SUCCEEDED and redelivered.event_id == failed.event_id


def test_send_test_event_makes_one_signed_attempt_shown_in_the_log(
    world, pro_a, hook, django_capture_on_commit_callbacks
):
    endpoint, secret = _endpoint(pro_a, hook.url)
    client = world.client_for(world.alice)
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(f"/t/acme/settings/webhooks/{endpoint.pk}/test/").status_code == 302
    [received] = hook.received
    assert received.event["type"] == "webhook.test" and received.verified_with(secret)
    log = client.get(f"/t/acme/settings/webhooks/{endpoint.pk}/", HTTP_HX_REQUEST="true", data={"log": 1})
    assert log.status_code == 200
    body = log.content.decode()
    assert "webhook.test" in body and received.event["id"] in body and "200" in body


def test_after_a_rotation_both_secrets_sign_so_either_verifies(world, pro_a, hook, django_capture_on_commit_callbacks):
    endpoint, old_secret = _endpoint(pro_a, hook.url)
    with tenant_context(pro_a):
        new_secret = services.endpoint_rotate_secret(endpoint=endpoint)
    _rate(pro_a, django_capture_on_commit_callbacks)
    [received] = hook.received
    assert received.headers["x-webhook-signature"].count("v1=") == 2
    assert received.verified_with(new_secret) and received.verified_with(old_secret)


def test_the_sweep_queues_due_deliveries_only_once(world, pro_a, hook, django_capture_on_commit_callbacks):
    from tests.webhooks.factories import DeliveryFactory

    endpoint, secret = _endpoint(pro_a, hook.url)
    due = DeliveryFactory(
        tenant=pro_a, endpoint=endpoint, status=Delivery.Status.PENDING, next_attempt_at=timezone.now()
    )
    later = DeliveryFactory(
        tenant=pro_a,
        endpoint=endpoint,
        status=Delivery.Status.PENDING,
        next_attempt_at=timezone.now() + timedelta(hours=1),
    )
    assert services.deliveries_queue_due() == 1
    assert services.deliveries_queue_due() == 0
    assert [r.event["id"] for r in hook.received] == [due.event_id]
    assert hook.received[0].verified_with(secret)
    later.refresh_from_db()
    assert later.status == Delivery.Status.PENDING and later.attempts == 0


def test_a_quota_warning_is_delivered(world, pro_a, hook, django_capture_on_commit_callbacks):
    from billing.quotas import effective_plan
    from billing.services import usage_warn_owners

    _endpoint(pro_a, hook.url, events=["quota.warning"])
    with django_capture_on_commit_callbacks(execute=True):
        usage_warn_owners(
            tenant=pro_a, plan=effective_plan(tenant=pro_a), kind="documents", label="documents", used=1700, limit=2000
        )
    [received] = hook.received
    assert received.event["data"]["kind"] == "documents" and received.event["data"]["used"] == 1700


def test_a_document_that_cannot_be_fetched_sends_document_failed(
    world, pro_a, hook, media, django_capture_on_commit_callbacks
):
    from knowledge.ingestion import document_ingest
    from knowledge.services import document_create_from_url, knowledge_base_create

    _endpoint(pro_a, hook.url, events=["document.ready", "document.failed"])
    with tenant_context(pro_a), django_capture_on_commit_callbacks(execute=True):
        kb = knowledge_base_create(tenant=pro_a, name="Handbook")
        # The receiver answers GET with 501, so the fetch fails for good.
        document = document_create_from_url(knowledge_base=kb, url=hook.url.replace("/hook", "/page"))
        document_ingest(document_id=document.pk)
    [received] = hook.received
    assert received.event["type"] == "document.failed"
    assert received.event["data"]["document_id"] == document.pk
    assert received.event["data"]["error_code"] == "fetch_failed"
