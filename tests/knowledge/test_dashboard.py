"""The knowledge dashboard under t/<slug>/knowledge/."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from knowledge.ingestion import document_ingest
from knowledge.models import Document, KnowledgeBase
from tenants.context import tenant_context
from tests.knowledge.factories import DocumentFactory


def test_an_owner_creates_a_knowledge_base_and_sees_it_listed(world):
    client = world.client_for(world.alice)
    response = client.post(
        reverse("kb_list", args=["acme"]),
        {
            "name": "Support",
            "embedding_model": "all-MiniLM-L6-v2",
            "chunk_size_tokens": 200,
            "chunk_overlap_tokens": 30,
        },
    )
    kb = KnowledgeBase.objects.unscoped().get(tenant=world.tenant_a, name="Support")
    assert response.status_code == 302 and response.url == reverse("kb_detail", args=["acme", kb.pk])
    assert "Support" in client.get(reverse("kb_list", args=["acme"])).content.decode()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "Handbook", "chunk_size_tokens": 200, "chunk_overlap_tokens": 30}, "already exists"),
        ({"name": "Big", "chunk_size_tokens": 4000, "chunk_overlap_tokens": 30}, "between 32 and 254"),
        ({"name": "Overlap", "chunk_size_tokens": 100, "chunk_overlap_tokens": 90}, "half the chunk size"),
    ],
)
def test_invalid_knowledge_base_settings_are_refused_with_a_reason(world, kb_a, data, message):
    response = world.client_for(world.alice).post(
        reverse("kb_list", args=["acme"]), {"embedding_model": "all-MiniLM-L6-v2", **data}
    )
    assert response.status_code == 400 and message in response.content.decode()


def test_uploading_a_file_queues_a_document_shown_with_a_progress_bar(
    world, kb_a, media, django_capture_on_commit_callbacks
):
    client = world.client_for(world.alice)
    upload = SimpleUploadedFile("faq.md", b"# FAQ\n\nWe answer within a day.\n", content_type="application/pdf")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(reverse("kb_document_upload", args=["acme", kb_a.pk]), {"file": upload})
    assert response.status_code == 302 and len(callbacks) == 1
    document = Document.objects.unscoped().get(knowledge_base=kb_a)
    assert (document.status, document.created_by, document.title) == ("queued", world.alice, "faq.md")
    page = client.get(reverse("kb_detail", args=["acme", kb_a.pk])).content.decode()
    assert "<progress" in page and "faq.md" in page
    status = client.get(reverse("kb_status", args=["acme", kb_a.pk])).json()
    assert status["documents"][0] | {"updated": None} == {
        "id": document.pk,
        "title": "faq.md",
        "status": "queued",
        "progress": 0,
        "error_code": None,
        "error_message": None,
        "attempts": 0,
        "chunk_count": 0,
        "size": document.size,
        "updated": None,
    }
    with tenant_context(world.tenant_a):
        document_ingest(document_id=document.pk)
    assert client.get(reverse("kb_status", args=["acme", kb_a.pk])).json()["documents"][0]["status"] == "ready"


def test_pasted_text_and_urls_are_added_and_a_private_url_is_refused(world, kb_a, media):
    client = world.client_for(world.alice)
    client.post(reverse("kb_document_add_text", args=["acme", kb_a.pk]), {"title": "Note", "text": "Hello there"})
    response = client.post(
        reverse("kb_document_add_url", args=["acme", kb_a.pk]), {"url": "http://169.254.169.254/latest"}, follow=True
    )
    assert "not a public internet address" in response.content.decode()
    assert list(Document.objects.unscoped().filter(knowledge_base=kb_a).values_list("title", flat=True)) == ["Note"]


def test_a_failed_document_shows_its_error_and_can_be_retried(world, kb_a, media):
    client = world.client_for(world.alice)
    client.post(
        reverse("kb_document_upload", args=["acme", kb_a.pk]), {"file": SimpleUploadedFile("x.pdf", b"%PDF-broken")}
    )
    document = Document.objects.unscoped().get(knowledge_base=kb_a)
    with tenant_context(world.tenant_a):
        document_ingest(document_id=document.pk)
    page = client.get(reverse("kb_detail", args=["acme", kb_a.pk])).content.decode()
    assert "The PDF is damaged" in page
    client.post(reverse("kb_document_retry", args=["acme", document.pk]))
    document.refresh_from_db()
    assert document.status == "queued" and document.error_message == ""


def test_deleting_a_document_removes_it_and_its_chunks(world, kb_a, media):
    client = world.client_for(world.alice)
    client.post(reverse("kb_document_add_text", args=["acme", kb_a.pk]), {"title": "Note", "text": "Bye"})
    document = Document.objects.unscoped().get(knowledge_base=kb_a)
    with tenant_context(world.tenant_a):
        document_ingest(document_id=document.pk)
    response = client.post(reverse("kb_document_delete", args=["acme", document.pk]))
    assert response.status_code == 302
    assert not Document.objects.unscoped().filter(pk=document.pk).exists()


def test_the_search_page_shows_cited_passages(world, kb_a, media):
    client = world.client_for(world.alice)
    client.post(
        reverse("kb_document_add_text", args=["acme", kb_a.pk]),
        {"title": "Hours", "text": "# Opening hours\n\nWe are open from nine to five on weekdays."},
    )
    with tenant_context(world.tenant_a):
        document_ingest(document_id=Document.objects.get().pk)
    page = client.get(reverse("kb_search", args=["acme", kb_a.pk]), {"q": "when are you open?"}).content.decode()
    assert 'data-testid="hit"' in page and "Opening hours" in page and "nine to five" in page


def test_it_checks_ownership(world, kb_a):
    document = DocumentFactory(tenant=world.tenant_a, knowledge_base=kb_a, status="failed")
    charlie = world.client_for(world.charlie)
    for name, arg in [("kb_detail", kb_a.pk), ("kb_status", kb_a.pk), ("kb_search", kb_a.pk)]:
        assert charlie.get(reverse(name, args=["bravo", arg])).status_code == 404
        assert charlie.get(reverse(name, args=["acme", arg])).status_code == 404
    for name in ("kb_document_retry", "kb_document_resync", "kb_document_delete"):
        assert charlie.post(reverse(name, args=["bravo", document.pk])).status_code == 404
    assert Document.objects.unscoped().filter(pk=document.pk, status="failed").exists()
    assert charlie.get(reverse("kb_list", args=["acme"])).status_code == 404


def test_malformed_form_input_is_refused_without_creating_anything(world, kb_a):
    client = world.client_for(world.alice)
    client.post(reverse("kb_document_upload", args=["acme", kb_a.pk]), {})
    client.post(reverse("kb_document_add_url", args=["acme", kb_a.pk]), {"url": "not a url at all"})
    client.post(reverse("kb_document_add_text", args=["acme", kb_a.pk]), {"title": "", "text": ""})
    assert not Document.objects.unscoped().filter(knowledge_base=kb_a).exists()
