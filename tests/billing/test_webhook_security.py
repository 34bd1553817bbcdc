"""The webhook endpoint is public, so every request proves itself with Stripe's signature."""

from __future__ import annotations

import json
import time

import pytest
from django.test import Client

from billing.models import StripeEvent
from tests.billing.conftest import WEBHOOK_SECRET, WEBHOOK_URL
from tests.fakes.stripe_server import sign

EVENT = json.dumps(
    {"id": "evt_sec_1", "object": "event", "type": "invoice.paid", "data": {"object": {"customer": "cus_x"}}}
)


def _post(body: str | bytes, signature: str | None, **extra):
    headers = {"HTTP_STRIPE_SIGNATURE": signature} if signature is not None else {}
    return Client().post(WEBHOOK_URL, data=body, content_type="application/json", **headers, **extra)


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        "garbage",
        "t=notanumber,v1=abc",
        "v1=" + "0" * 64,
        "t=1700000000",
        sign(EVENT, "whsec_someone_else"),
        sign(EVENT, WEBHOOK_SECRET).replace("v1=", "v0="),
        sign(EVENT, WEBHOOK_SECRET, timestamp=int(time.time()) - 301),
        sign(EVENT.replace("invoice.paid", "invoice.payment_failed"), WEBHOOK_SECRET),
        "t=1," + ",".join(f"v1={i:064d}" for i in range(2000)),
    ],
    ids=[
        "missing",
        "empty",
        "garbage",
        "bad-timestamp",
        "no-timestamp",
        "no-signature",
        "wrong-secret",
        "wrong-scheme",
        "stale",
        "other-payload",
        "huge-header",
    ],
)
def test_a_request_without_a_valid_recent_signature_is_refused_and_not_stored(db, signature):
    response = _post(EVENT, signature)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_signature"
    assert StripeEvent.objects.count() == 0


def test_a_signed_payload_that_is_not_json_is_refused(db):
    body = "this is not json {"
    response = _post(body, sign(body, WEBHOOK_SECRET))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_payload"
    assert StripeEvent.objects.count() == 0


@pytest.mark.parametrize(
    "body",
    [
        "[]",
        "null",
        '"evt_1"',
        '{"id": "evt_1", "type": "invoice.paid"}',
        '{"object": "event", "type": "invoice.paid"}',
        '{"object": "event", "id": 5, "type": "invoice.paid"}',
        '{"object": "event", "id": "evt_1", "type": ["x"]}',
        json.dumps({"object": "event", "id": "e" * 300, "type": "invoice.paid"}),
        json.dumps({"object": "event", "id": "", "type": "invoice.paid"}),
    ],
)
def test_a_signed_json_body_that_is_not_a_stripe_event_is_refused(db, body):
    response = _post(body, sign(body, WEBHOOK_SECRET))
    assert response.status_code == 400
    assert StripeEvent.objects.count() == 0


def test_a_body_that_is_not_utf8_is_refused(db):
    body = b'{"id": "\xff\xfe"}'
    response = _post(body, "t=1,v1=00")
    assert response.status_code == 400
    assert StripeEvent.objects.count() == 0


def test_an_oversized_body_is_refused_before_verification(db, settings):
    settings.STRIPE_WEBHOOK_MAX_BYTES = 1024
    body = json.dumps({"id": "evt_big", "object": "event", "type": "invoice.paid", "pad": "x" * 2048})
    response = _post(body, sign(body, WEBHOOK_SECRET))
    assert response.status_code == 413
    assert StripeEvent.objects.count() == 0


def test_both_secrets_are_accepted_while_a_secret_is_rolled(db, settings):
    settings.STRIPE_WEBHOOK_SECRETS = ["whsec_new", WEBHOOK_SECRET]
    old = _post(EVENT, sign(EVENT, WEBHOOK_SECRET))
    other = EVENT.replace("evt_sec_1", "evt_sec_2")
    new = _post(other, sign(other, "whsec_new"))
    assert (old.status_code, new.status_code) == (200, 200)
    assert StripeEvent.objects.count() == 2


def test_without_a_configured_secret_every_webhook_is_refused(db, settings):
    settings.STRIPE_WEBHOOK_SECRETS = []
    response = _post(EVENT, sign(EVENT, WEBHOOK_SECRET))
    assert response.status_code == 503
    assert StripeEvent.objects.count() == 0


def test_the_webhook_accepts_post_only_and_needs_no_csrf_token(db):
    assert Client().get(WEBHOOK_URL).status_code == 405
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        WEBHOOK_URL, data=EVENT, content_type="application/json", HTTP_STRIPE_SIGNATURE=sign(EVENT, WEBHOOK_SECRET)
    )
    assert response.status_code == 200
