"""Billing tests talk to a fake Stripe through the official SDK.

The fake starts when this conftest is loaded, before any session fixture starts a Celery
worker or daphne, and its address goes into the environment, so those child processes reach
the same fake as the tests do.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
from celery import _state as celery_state
from django.conf import settings
from django.test import Client

from billing.models import Plan, StripeEvent
from billing.services import plans_seed
from chatbot_saas.celery import app as celery_app
from tests.fakes.stripe_server import FakeStripe, FakeStripeServer, SentEvent

API_KEY = "sk_test_fake_billing"
WEBHOOK_SECRET = "whsec_test_billing"
PRICE_STARTER = "price_starter_monthly"
PRICE_PRO = "price_pro_monthly"
WEBHOOK_URL = "/billing/stripe/webhook/"

_server: FakeStripeServer | None = None


def _billing_env(base_url: str) -> dict[str, str]:
    return {
        "STRIPE_SECRET_KEY": API_KEY,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "STRIPE_API_BASE": base_url,
        "STRIPE_MAX_NETWORK_RETRIES": "0",
        "STRIPE_PRICE_STARTER": PRICE_STARTER,
        "STRIPE_PRICE_PRO": PRICE_PRO,
    }


def pytest_configure(config: pytest.Config) -> None:
    global _server
    _server = FakeStripeServer(api_key=API_KEY, webhook_secret=WEBHOOK_SECRET).start()
    os.environ.update(_billing_env(_server.base_url))
    settings.STRIPE_SECRET_KEY = API_KEY
    settings.STRIPE_WEBHOOK_SECRETS = [WEBHOOK_SECRET]
    settings.STRIPE_API_BASE = _server.base_url
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    settings.STRIPE_PRICE_STARTER = PRICE_STARTER
    settings.STRIPE_PRICE_PRO = PRICE_PRO


def pytest_unconfigure(config: pytest.Config) -> None:
    if _server is not None:
        _server.stop()


@pytest.fixture
def stripe_fake() -> FakeStripe:
    assert _server is not None
    return _server.fake


@pytest.fixture
def plans(db: None) -> dict[str, Plan]:
    """Free, Starter and Pro as seeded on a fresh database (transactional tests flush them)."""
    return {plan.slug: plan for plan in plans_seed()}


@pytest.fixture
def eager_celery() -> Iterator[None]:
    """Run queued tasks inline (unit tests only; integration tests use live_worker)."""
    celery_app.conf.task_always_eager = True
    try:
        yield
    finally:
        celery_app.conf.task_always_eager = False
        # Celery's eager apply sets a process-wide "a join would block" flag and restores it without
        # a lock: eager tasks run from several threads at once (the ten concurrent webhook
        # deliveries) can leave it set, and every later `.get()` in this process then raises "Never
        # call result.get() within a task". Not a task here, so clear it (celery._state is private).
        celery_state._set_task_join_will_block(False)


@pytest.fixture
def post_event(django_capture_on_commit_callbacks: Callable) -> Callable[..., object]:
    """POST a fake-Stripe event to the real webhook view, signed, running on-commit queues."""

    def post(event: SentEvent, *, client: Client | None = None, secret: str = WEBHOOK_SECRET, **headers: str):
        signed = event.signed_headers(secret)
        with django_capture_on_commit_callbacks(execute=True):
            return (client or Client()).post(
                WEBHOOK_URL,
                data=event.payload,
                content_type="application/json",
                HTTP_STRIPE_SIGNATURE=signed["Stripe-Signature"],
                **headers,
            )

    return post


def event_row(event: SentEvent) -> StripeEvent:
    return StripeEvent.objects.get(stripe_id=event.id)
