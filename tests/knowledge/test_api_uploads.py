"""An upload the API refuses answers 4xx with a code and a sentence, and stores nothing."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from billing.services import subscription_comp
from knowledge.models import Document
from tenants.context import tenant_context
from tenants.services import api_key_create
from tests.knowledge.factories import KnowledgeBaseFactory

OLE_HEADER = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 40


@pytest.fixture
def upload(world, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    subscription_comp(tenant=world.tenant_a, plan_slug="starter")
    with tenant_context(world.tenant_a):
        raw = api_key_create(tenant=world.tenant_a, name="up", scopes=["knowledge:read", "knowledge:write"])[1]
    kb = KnowledgeBaseFactory(tenant=world.tenant_a)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")

    def send(name: str, content: bytes):
        file = SimpleUploadedFile(name, content, content_type="application/octet-stream")
        return client.post(f"/api/v1/knowledge-bases/{kb.pk}/documents", data={"file": file})

    return send


@pytest.mark.parametrize(
    ("name", "content", "status", "code"),
    [
        ("empty.txt", b"", 400, "empty_file"),
        ("big.md", b"# Big\n" + b"word " * 40, 413, "file_too_large"),
        ("photo.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10", 415, "unsupported_type"),
        ("old.doc", OLE_HEADER, 415, "encrypted_or_legacy_office"),
    ],
)
def test_a_refused_upload_answers_4xx_with_a_code_and_stores_nothing(
    world, upload, settings, name, content, status, code
):
    settings.KNOWLEDGE_MAX_UPLOAD_BYTES = 100
    response = upload(name, content)
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code and error["message"].endswith(".")
    assert "status" not in response.json()
    assert not Document.objects.unscoped().filter(tenant=world.tenant_a).exists()


def test_an_accepted_upload_is_still_created_and_queued(world, upload, settings):
    settings.KNOWLEDGE_MAX_UPLOAD_BYTES = 100
    response = upload("faq.md", b"# FAQ\n\nWe ship worldwide.\n")
    assert response.status_code == 201 and response.json()["status"] != "failed"
    assert Document.objects.unscoped().filter(tenant=world.tenant_a).count() == 1
