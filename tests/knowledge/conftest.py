from __future__ import annotations

import pytest

from knowledge.services import knowledge_base_create
from tenants.context import tenant_context


@pytest.fixture
def kb_a(world):
    with tenant_context(world.tenant_a):
        return knowledge_base_create(tenant=world.tenant_a, name="Handbook")


@pytest.fixture
def kb_b(world):
    with tenant_context(world.tenant_b):
        return knowledge_base_create(tenant=world.tenant_b, name="Handbook")


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def other_workers_paused():
    """Workers started by other tests (the session's live_worker) stop consuming for this test,
    so its tasks run only on the workers it starts itself (with its own environment)."""
    from chatbot_saas.celery import app

    replies = app.control.cancel_consumer("celery", reply=True, timeout=2) or []
    paused = [name for reply in replies for name in reply]
    yield
    if paused:
        app.control.add_consumer("celery", destination=paused, reply=True, timeout=2)
