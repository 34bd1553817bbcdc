from __future__ import annotations

from collections.abc import Iterator

import pytest

from billing.services import subscription_comp
from tests.webhooks.receiver import Receiver, receiver


@pytest.fixture
def pro_a(world):
    """Tenant A on Pro, the plan with webhooks."""
    subscription_comp(tenant=world.tenant_a, plan_slug="pro")
    return world.tenant_a


@pytest.fixture
def loopback(settings) -> None:
    # The egress guard's own test switch: lets this process reach the receiver on 127.0.0.1.
    settings.KNOWLEDGE_EGRESS_ALLOW_LOOPBACK = True


@pytest.fixture
def hook(loopback) -> Iterator[Receiver]:
    with receiver() as running:
        yield running


@pytest.fixture
def eager_celery(settings) -> Iterator[None]:
    """Run queued deliveries inline (unit tests; the integration test uses live_worker)."""
    from chatbot_saas.celery import app

    settings.CELERY_TASK_ALWAYS_EAGER = True
    app.conf.task_always_eager = True
    try:
        yield
    finally:
        app.conf.task_always_eager = False


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT
