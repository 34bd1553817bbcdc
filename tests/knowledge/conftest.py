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
